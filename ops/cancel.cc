// Out-of-line parts of shardio/ops/cancel.h.
#include "shardio/ops/cancel.h"
