package fs

import "github.com/fnhost/fnhost/triggers"

// Ready is closed once tr watches its tree and its start-up scan is done.
func Ready(tr triggers.Trigger) <-chan struct{} { return tr.(*Trigger).ready }
