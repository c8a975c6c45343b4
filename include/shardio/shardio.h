// shardio/shardio.h — the umbrella header: the runtime, tasks, the Operation
// API, batching and the built-in ops.
#pragma once

#include "shardio/batch.h"
#include "shardio/buffer.h"
#include "shardio/buffer_pool.h"
#include "shardio/channel.h"
#include "shardio/cross_shard.h"
#include "shardio/fs.h"
#include "shardio/operation.h"
#include "shardio/ops/cancel.h"
#include "shardio/ops/file.h"
#include "shardio/ops/nop.h"
#include "shardio/ops/path.h"
#include "shardio/ops/splice.h"
#include "shardio/ops/timeout.h"
#include "shardio/result.h"
#include "shardio/runtime.h"
#include "shardio/task.h"
#include "shardio/time.h"
