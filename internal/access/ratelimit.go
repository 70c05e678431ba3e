package access

// RateLimited is the refusal of a request over a rate limit (too many
// requests, or too many failed authentications, from one client or
// address); it is answered 429 and logged like any other refusal.
const RateLimited Reason = "rate-limited"

// Throttled is the refusal of a request over a rate limit, for the usage
// log.
func Throttled(msg string) Decision { return deny(RateLimited, "%s", msg) }
