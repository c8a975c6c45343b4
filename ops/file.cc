// Out-of-line parts of shardio/ops/file.h.
#include "shardio/ops/file.h"
