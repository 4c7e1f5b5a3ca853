package store

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/fnhost/fnhost"
)

// DefaultListLimit is the page size of a List whose filter sets no limit.
const DefaultListLimit = 100

// MaxListLimit caps the page size of a List.
const MaxListLimit = 1000

// Cond is one condition of a List query: SQL with ? for its argument, or none when Arg
// is nil. A time.Time argument is a created_at, which each store writes in its own way.
type Cond struct {
	SQL string
	Arg any
}

// ListPlan is how the stores read a Filter, the same way in both: the index that
// answers the most of it, the conditions that index answers, and those it leaves to be
// checked row by row (which MaxScan bounds).
type ListPlan struct {
	// Index is the index to read, newest id first: "parent" (parent_id, id),
	// "function_state" (function, state, id), "state" (state, id), "running" (id),
	// "function" (function, id), or "" for the ids themselves. Each store names its
	// indexes invocations_<Index>.
	Index string
	// OnIndex are the conditions Index answers, among them the id bounds of the cursor
	// and of Since and Until (ids are ULIDs of the creation time); Checked are checked
	// row by row.
	OnIndex, Checked []Cond
	// Limit is the page size.
	Limit int
}

// PlanList reads f. States are written into the conditions as literals (a partial
// index can then be matched to them whatever plan a database caches), so an unknown
// state is an error.
func PlanList(f Filter) (ListPlan, error) {
	p := ListPlan{Limit: f.Limit}
	if p.Limit <= 0 {
		p.Limit = DefaultListLimit
	}
	p.Limit = min(p.Limit, MaxListLimit)
	if f.State != "" && !slices.Contains(fnhost.States, f.State) {
		return p, fmt.Errorf("unknown state %q", f.State)
	}
	onIndex := func(sql string, arg any) { p.OnIndex = append(p.OnIndex, Cond{sql, arg}) }
	checked := func(sql string, arg any) { p.Checked = append(p.Checked, Cond{sql, arg}) }
	stateIs := "state = '" + string(f.State) + "'"
	const indexedStates = `state NOT IN ('pending', 'running', 'succeeded')`
	function, state := f.Function != "", f.State != ""
	switch {
	case f.ParentID != "":
		p.Index = "parent"
		onIndex("parent_id = ?", f.ParentID)
	case IndexedState(f.State):
		p.Index = "state"
		if function {
			p.Index = "function_state"
			onIndex("function = ?", f.Function)
			function = false
		}
		onIndex(stateIs, nil)
		onIndex(indexedStates, nil)
		state = false
	case f.State == fnhost.StateRunning:
		p.Index = "running"
		onIndex(stateIs, nil)
		state = false
	case function:
		p.Index = "function"
		onIndex("function = ?", f.Function)
		function = false
	}
	if function {
		checked("function = ?", f.Function)
	}
	if state {
		checked(stateIs, nil)
	}
	if f.Trigger != "" {
		checked("trigger = ?", f.Trigger)
	}
	if !f.Since.IsZero() {
		onIndex("id >= ?", fnhost.MinIDAt(f.Since))
		checked("created_at >= ?", f.Since)
	}
	if !f.Until.IsZero() {
		onIndex("id < ?", fnhost.MinIDAt(f.Until.Add(time.Millisecond)))
		checked("created_at < ?", f.Until)
	}
	if f.Cursor != "" {
		onIndex("id < ?", f.Cursor)
	}
	return p, nil
}

// IndexedState reports whether state has the indexes invocations_state and
// invocations_function_state of its own: the states few invocations stay in.
func IndexedState(state fnhost.State) bool {
	switch state {
	case fnhost.StateScheduled, fnhost.StateAwaiting, fnhost.StateFailed, fnhost.StateCancelled:
		return true
	}
	return false
}

// Page is the page of items, read with up to Limit+1 rows: a row beyond Limit means
// more follow; floor, when MaxScan cut the scan short there, is where the listing goes
// on.
func (p ListPlan) Page(items []*fnhost.Invocation, floor string) Page {
	page := Page{Items: items}
	switch {
	case len(items) > p.Limit:
		page.Items = items[:p.Limit]
		page.NextCursor = page.Items[p.Limit-1].ID
	case floor != "":
		page.NextCursor = floor
	}
	return page
}

// Where renders conds as a WHERE clause (empty without conditions), the ? of the n-th
// argument written as param(n) (counting from 1), and returns it with the arguments,
// each as arg turns it (a store writes times its own way).
func Where(conds []Cond, param func(n int) string, arg func(any) any) (string, []any) {
	if len(conds) == 0 {
		return "", nil
	}
	var b strings.Builder
	var args []any
	for i, c := range conds {
		if i == 0 {
			b.WriteString(" WHERE ")
		} else {
			b.WriteString(" AND ")
		}
		sql := c.SQL
		if c.Arg != nil {
			args = append(args, arg(c.Arg))
			sql = strings.Replace(sql, "?", param(len(args)), 1)
		}
		b.WriteString(sql)
	}
	return b.String(), args
}
