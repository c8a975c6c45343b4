// shardio/time.h — timers (sleep, with_timeout); see ops/timeout.h.
#pragma once

#include "shardio/ops/timeout.h"
