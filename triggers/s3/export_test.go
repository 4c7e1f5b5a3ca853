package s3

import "github.com/fnhost/fnhost/triggers"

// Ready is closed once tr is set up and its first listing of the bucket is done.
func Ready(tr triggers.Trigger) <-chan struct{} { return tr.(*Trigger).ready }
