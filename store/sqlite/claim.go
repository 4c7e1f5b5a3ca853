package sqlite

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/store"
)

// A claim reads the ready rows of each function it asks for from invocations_claim,
// which is ordered by function, then claim order (priority desc, run_at, id): one arm
// per function, a seek to that function's first ready row. The arms are the terms of a
// UNION ALL whose ORDER BY is the claim order, which SQLite runs as a merge of the arms
// (each already in that order, none sorted) that stops at the LIMIT: a claim of limit
// rows for k functions reads at most limit+k index entries after k seeks, whatever the
// backlog of the functions it does not ask for.
//
// The parameters are ?1 the owner, ?2 the lease, ?3 now, ?4 the limit, and ?5… the
// functions, one per arm. A statement has a power of two of arms, the unused ones bound
// to NULL (which matches no row), so that few statement texts are prepared.

// maxClaimArms is the most arms one claim statement has; SQLite allows 500 terms in a
// compound SELECT. A claim for more functions chooses its rows group by group.
const maxClaimArms = 256

// claimArgs is the number of parameters before the functions.
const claimArgs = 4

// claimArmsSQL is the claim order of the ready rows of n functions, up to ?4 of them,
// as rows (r: rowid, p: priority, t: run_at, id).
func claimArmsSQL(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString("\n\t\tUNION ALL ")
		}
		b.WriteString(`SELECT rowid AS r, priority AS p, run_at AS t, id FROM invocations INDEXED BY invocations_claim
			WHERE function = ?`)
		b.WriteString(strconv.Itoa(claimArgs + 1 + i))
		b.WriteString(` AND state IN ('pending', 'scheduled') AND (state = 'pending' OR run_at <= ?3)`)
	}
	b.WriteString("\n\t\tORDER BY p DESC, t, id LIMIT ?4")
	return b.String()
}

var (
	// claimSQL claims the first ?4 ready rows of n functions.
	claimSQL = sqlCache{build: func(n int) string {
		return `UPDATE invocations SET state = 'running', attempt = attempt + 1, lease_owner = ?1,
		lease_until = ?2, started_at = ?3, finished_at = NULL
		WHERE rowid IN (SELECT r FROM (` + claimArmsSQL(n) + `))
		RETURNING id, attempt`
	}}
	// claimCandidatesSQL returns the first ?4 ready rows of n functions, for a claim of
	// more than maxClaimArms functions.
	claimCandidatesSQL = sqlCache{build: func(n int) string {
		return `SELECT r, p, t, id FROM (` + claimArmsSQL(n) + `)`
	}}
)

// claimRowsSQL claims rows chosen by rowid (a JSON array in ?4).
const claimRowsSQL = `UPDATE invocations SET state = 'running', attempt = attempt + 1, lease_owner = ?1,
	lease_until = ?2, started_at = ?3, finished_at = NULL
	WHERE rowid IN (SELECT value FROM json_each(?4)) AND state IN ('pending', 'scheduled')
	RETURNING id, attempt`

// readyFunctionsSQL lists the functions that have pending or scheduled rows, one seek
// in invocations_claim per function.
const readyFunctionsSQL = `WITH RECURSIVE f(name) AS (
		SELECT (SELECT function FROM invocations INDEXED BY invocations_claim
			WHERE state IN ('pending', 'scheduled') ORDER BY function LIMIT 1)
		UNION ALL
		SELECT (SELECT function FROM invocations INDEXED BY invocations_claim
			WHERE state IN ('pending', 'scheduled') AND function > f.name ORDER BY function LIMIT 1)
		FROM f WHERE f.name IS NOT NULL
	)
	SELECT name FROM f WHERE name IS NOT NULL`

// claimArms is the number of arms of the statement for k functions: the next power of
// two, at most maxClaimArms.
func claimArms(k int) int {
	if k <= 1 {
		return 1
	}
	return min(1<<bits.Len(uint(k-1)), maxClaimArms)
}

// Claim moves up to req.Limit ready invocations to running under req.Owner. Ready means
// pending, or scheduled with run_at <= req.Now. The result is in claim order: priority
// (highest first), then run_at, then id; it carries the events but not the attempts.
//
// The writer only flips the rows and returns their ids and attempt numbers; the rest
// of each invocation is read after the commit from a read connection, off the writer.
func (s *Store) Claim(ctx context.Context, req store.ClaimRequest) ([]*fnhost.Invocation, error) {
	fns, now, none, err := req.Normalize()
	if err != nil {
		return nil, fmt.Errorf("claim: %w", err)
	}
	if none {
		return nil, nil
	}
	attempts := make(map[string]int, req.Limit)
	var ids []string
	err = s.do(ctx, req.Limit, func(w *writer) error {
		clear(attempts)
		ids = ids[:0]
		list := fns
		if list == nil {
			var err error
			if list, err = w.readyFunctions(req.Exclude); err != nil || len(list) == 0 {
				return err
			}
		}
		return w.claim(list, req.Owner, micros(req.LeaseUntil), micros(now), req.Limit, func(id string, attempt int) {
			attempts[id] = attempt
			ids = append(ids, id)
		})
	})
	if err != nil {
		return nil, fmt.Errorf("claim: %w", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	out, err := s.readClaimed(context.WithoutCancel(ctx), ids)
	if err != nil {
		return nil, fmt.Errorf("claim: read claimed invocations: %w", err)
	}
	started := now.UTC().Truncate(time.Microsecond)
	lease := req.LeaseUntil.UTC().Truncate(time.Microsecond)
	for _, inv := range out {
		// The claim's own values, whatever happened to the row since the commit.
		inv.State = fnhost.StateRunning
		inv.Attempt = attempts[inv.ID]
		inv.LeaseOwner = req.Owner
		inv.LeaseUntil = &lease
		inv.StartedAt = &started
		inv.FinishedAt = nil
	}
	store.SortClaimed(out)
	return out, nil
}

// readyFunctions returns the functions with pending or scheduled rows, less exclude.
func (w *writer) readyFunctions(exclude []string) ([]string, error) {
	rs, err := w.query(readyFunctionsSQL)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []string
	for rs.Next() {
		var f string
		if err := rs.Scan(&f); err != nil {
			return nil, err
		}
		if !slices.Contains(exclude, f) {
			out = append(out, f)
		}
	}
	return out, rs.Err()
}

// claim claims up to limit ready rows of fns in claim order and hands each claimed
// row's id and new attempt number to got.
func (w *writer) claim(fns []string, owner string, lease, now int64, limit int, got func(id string, attempt int)) error {
	args := make([]any, claimArgs, claimArgs+claimArms(len(fns)))
	args[0], args[1], args[2], args[3] = owner, lease, now, limit
	var query string
	if len(fns) <= maxClaimArms {
		n := claimArms(len(fns))
		for _, f := range fns {
			args = append(args, f)
		}
		args = append(args, make([]any, n-len(fns))...)
		query = claimSQL.get(n)
	} else {
		rowids, err := w.claimCandidates(fns, args, limit)
		if err != nil {
			return err
		}
		args[3] = rowids
		query = claimRowsSQL
	}
	rs, err := w.query(query, args...)
	if err != nil {
		return err
	}
	defer rs.Close()
	for rs.Next() {
		var id string
		var attempt int
		if err := rs.Scan(&id, &attempt); err != nil {
			return err
		}
		got(id, attempt)
	}
	return rs.Err()
}

// claimCandidates chooses the rows a claim of more than maxClaimArms functions takes:
// the first limit ready rows of each group of functions, merged in claim order, cut to
// limit. It returns their rowids as a JSON array. args holds the claim's parameters
// before the functions.
func (w *writer) claimCandidates(fns []string, args []any, limit int) (string, error) {
	type candidate struct {
		rowid, priority, runAt int64
		id                     string
	}
	var all []candidate
	for off := 0; off < len(fns); off += maxClaimArms {
		group := fns[off:min(off+maxClaimArms, len(fns))]
		n := claimArms(len(group))
		a := make([]any, claimArgs, claimArgs+n)
		copy(a, args)
		for _, f := range group {
			a = append(a, f)
		}
		a = append(a, make([]any, n-len(group))...)
		rs, err := w.query(claimCandidatesSQL.get(n), a...)
		if err != nil {
			return "", err
		}
		for rs.Next() {
			var c candidate
			if err := rs.Scan(&c.rowid, &c.priority, &c.runAt, &c.id); err != nil {
				_ = rs.Close()
				return "", err
			}
			all = append(all, c)
		}
		if err := rs.Close(); err != nil {
			return "", err
		}
	}
	slices.SortFunc(all, func(a, b candidate) int {
		if c := cmp.Compare(b.priority, a.priority); c != 0 {
			return c
		}
		if c := cmp.Compare(a.runAt, b.runAt); c != 0 {
			return c
		}
		return cmp.Compare(a.id, b.id)
	})
	rowids := make([]int64, 0, min(limit, len(all)))
	for _, c := range all[:min(limit, len(all))] {
		rowids = append(rowids, c.rowid)
	}
	b, err := json.Marshal(rowids)
	return string(b), err
}

// readClaimed reads claimed invocations with their events from the read pool. The ids
// are held by the caller's lease, so their rows cannot be deleted meanwhile.
func (s *Store) readClaimed(ctx context.Context, ids []string) ([]*fnhost.Invocation, error) {
	list, _ := json.Marshal(ids)
	st, err := s.rstmt(ctx, `SELECT `+invColumns+`, event FROM invocations
		WHERE id IN (SELECT value FROM json_each(?))`)
	if err != nil {
		return nil, err
	}
	rs, err := st.QueryContext(ctx, string(list))
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	out := make([]*fnhost.Invocation, 0, len(ids))
	for rs.Next() {
		inv, err := scanInvocation(rs, true)
		if err != nil {
			return nil, err
		}
		out = append(out, inv)
	}
	return out, rs.Err()
}
