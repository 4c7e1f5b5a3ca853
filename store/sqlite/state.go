package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/bits"
	"strings"
	"time"
)

// GetState returns the value stored under key, nil when the key is unset, and an
// empty, non-nil slice for a stored empty value.
func (s *Store) GetState(ctx context.Context, key string) ([]byte, error) {
	st, err := s.rstmt(ctx, `SELECT value FROM state WHERE key = ?`)
	if err != nil {
		return nil, fmt.Errorf("get state %q: %w", key, err)
	}
	var v []byte
	err = st.QueryRowContext(ctx, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get state %q: %w", key, err)
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

// PutState stores value under key (nil as an empty value).
func (s *Store) PutState(ctx context.Context, key string, value []byte) error {
	now := micros(time.Now())
	err := s.do(ctx, 1, func(w *writer) error {
		_, err := w.exec(`INSERT INTO state (key, value, updated_at) VALUES (?1, ?2, ?3)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
			key, blob(value), now)
		return err
	})
	if err != nil {
		return fmt.Errorf("put state %q: %w", key, err)
	}
	return nil
}

// CompareAndPutState stores new under key if its value is old (nil: unset) and reports
// whether it did. The writer runs one request at a time, so the comparison and the
// write are one step.
func (s *Store) CompareAndPutState(ctx context.Context, key string, old, new []byte) (bool, error) {
	now := micros(time.Now())
	var wrote bool
	err := s.do(ctx, 1, func(w *writer) error {
		var r sql.Result
		var err error
		if old == nil {
			r, err = w.exec(`INSERT INTO state (key, value, updated_at) VALUES (?1, ?2, ?3)
				ON CONFLICT (key) DO NOTHING`, key, blob(new), now)
		} else {
			r, err = w.exec(`UPDATE state SET value = ?2, updated_at = ?3 WHERE key = ?1 AND value = ?4`,
				key, blob(new), now, blob(old))
		}
		if err != nil {
			return err
		}
		n, err := r.RowsAffected()
		wrote = n == 1
		return err
	})
	if err != nil {
		return false, fmt.Errorf("compare and put state %q: %w", key, err)
	}
	return wrote, nil
}

// blob is the stored form of a state value: never NULL, always a BLOB, so that values
// compare byte for byte.
func blob(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// keyChunk is the most receipt keys one statement takes.
const keyChunk = 512

// keyChunks splits keys into chunks of at most keyChunk. Each chunk is padded, by
// repeating its first key, to a power of two, so that a few statement texts serve every
// size.
func keyChunks(keys []string) [][]any {
	var out [][]any
	for off := 0; off < len(keys); off += keyChunk {
		chunk := keys[off:min(off+keyChunk, len(keys))]
		size := 1 << bits.Len(uint(len(chunk)-1))
		args := make([]any, 0, size+1)
		for _, k := range chunk {
			args = append(args, k)
		}
		for len(args) < size {
			args = append(args, chunk[0])
		}
		out = append(out, args)
	}
	return out
}

// placeholders returns n comma-separated ?.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}

// Receipts returns the versions held by the receipts of function for keys, for the keys
// that have one.
func (s *Store) Receipts(ctx context.Context, function string, keys []string) (map[string]string, error) {
	out := make(map[string]string)
	for _, chunk := range keyChunks(keys) {
		st, err := s.rstmt(ctx, `SELECT key, version FROM receipts
			WHERE function = ? AND key IN (`+placeholders(len(chunk))+`)`)
		if err != nil {
			return nil, fmt.Errorf("receipts of %s: %w", function, err)
		}
		if err := readReceipts(ctx, st, append([]any{function}, chunk...), out); err != nil {
			return nil, fmt.Errorf("receipts of %s: %w", function, err)
		}
	}
	return out, nil
}

func readReceipts(ctx context.Context, st *sql.Stmt, args []any, out map[string]string) error {
	rs, err := st.QueryContext(ctx, args...)
	if err != nil {
		return err
	}
	defer rs.Close()
	for rs.Next() {
		var key, version string
		if err := rs.Scan(&key, &version); err != nil {
			return err
		}
		out[key] = version
	}
	return rs.Err()
}

// ForgetReceipts deletes the receipts of function for keys, in one transaction.
func (s *Store) ForgetReceipts(ctx context.Context, function string, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	chunks := keyChunks(keys)
	err := s.do(ctx, len(keys), func(w *writer) error {
		for _, chunk := range chunks {
			if _, err := w.exec(`DELETE FROM receipts WHERE function = ? AND key IN (`+placeholders(len(chunk))+`)`,
				append([]any{function}, chunk...)...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("forget receipts of %s: %w", function, err)
	}
	return nil
}

// ReceiptKeys lists up to limit receipt keys of function starting with prefix and
// greater than after, in byte order (SQLite's BINARY collation). The prefix becomes a
// range of the primary key, so that a page reads only its own rows.
func (s *Store) ReceiptKeys(ctx context.Context, function, prefix, after string, limit int) ([]string, error) {
	if limit <= 0 {
		return nil, nil
	}
	q := `SELECT key FROM receipts WHERE function = ?1`
	args := []any{function, limit}
	// Whichever of prefix and after is the stricter lower bound.
	if after < prefix {
		q += ` AND key >= ?3`
		args = append(args, prefix)
	} else {
		q += ` AND key > ?3`
		args = append(args, after)
	}
	if end, ok := prefixEnd(prefix); ok {
		q += ` AND key < ?4`
		args = append(args, end)
	}
	q += ` ORDER BY key LIMIT ?2`
	st, err := s.rstmt(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("receipt keys of %s: %w", function, err)
	}
	rs, err := st.QueryContext(ctx, args...)
	if err != nil {
		return nil, fmt.Errorf("receipt keys of %s: %w", function, err)
	}
	defer rs.Close()
	var out []string
	for rs.Next() {
		var key string
		if err := rs.Scan(&key); err != nil {
			return nil, fmt.Errorf("receipt keys of %s: %w", function, err)
		}
		out = append(out, key)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("receipt keys of %s: %w", function, err)
	}
	return out, nil
}

// prefixEnd returns the smallest string greater than every string starting with prefix,
// or false when there is none (prefix is empty or all 0xff bytes).
func prefixEnd(prefix string) (string, bool) {
	b := []byte(prefix)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1]), true
		}
	}
	return "", false
}
