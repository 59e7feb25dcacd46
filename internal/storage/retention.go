package storage

import "time"

// ThrottleRetention is how long GarbageCollect keeps a throttle row after its last failure.
// RecordLoginFailure forgets older failures anyway once its window has passed, so any window
// up to this long behaves the same whether or not a collection ran in between.
const ThrottleRetention = 24 * time.Hour
