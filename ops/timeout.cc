// Out-of-line parts of shardio/ops/timeout.h.
#include "shardio/ops/timeout.h"
