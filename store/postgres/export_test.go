package postgres

// Retries is how many calls, of every store of the test binary, ran again after losing a
// race against another instance.
func Retries() int64 { return retries.Load() }
