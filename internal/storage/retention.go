package storage

import "time"

// ThrottleRetention is how long GarbageCollect keeps a throttle row after its last failure.
// RecordLoginFailure forgets older failures anyway once its window has passed, so any window
// up to this long behaves the same whether or not a collection ran in between.
const ThrottleRetention = 24 * time.Hour

// CodeRedemptionRetention is how long GarbageCollect keeps the record of a code's redemption
// after the code expired. The record is all that keeps a sealed code from being redeemed
// again, so it must outlive the code on every replica's clock: a replica whose clock runs
// ahead would otherwise collect it while another still accepts the code.
const CodeRedemptionRetention = 10 * time.Minute

// DeviceCodeRetention is how long GarbageCollect keeps a device code after it expired, so
// that a device still polling is told expired_token (RFC 8628 §3.5) rather than that its
// code is unknown.
const DeviceCodeRetention = 10 * time.Minute
