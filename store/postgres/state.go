package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// GetState returns the value stored under key, nil when the key is unset, and an
// empty, non-nil slice for a stored empty value.
func (s *Store) GetState(ctx context.Context, key string) ([]byte, error) {
	var v []byte
	err := s.pool.QueryRow(ctx, `SELECT value FROM state WHERE key = $1`, key).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
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

// blob is the stored form of a state value: never NULL.
func blob(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// PutState stores value under key (nil as an empty value).
func (s *Store) PutState(ctx context.Context, key string, value []byte) error {
	err := retry(ctx, func() error {
		_, err := s.pool.Exec(ctx, `INSERT INTO state (key, value, updated_at) VALUES ($1, $2, $3)
			ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at`,
			key, blob(value), time.Now())
		return err
	})
	if err != nil {
		return fmt.Errorf("put state %q: %w", key, err)
	}
	return nil
}

// CompareAndPutState stores new under key if its value is old (nil: unset) and reports
// whether it did. Either case is one statement that PostgreSQL makes atomic against
// every other instance: an INSERT that a concurrent one of the same key makes wait and
// then do nothing, or an UPDATE whose condition is checked again on the row a
// concurrent writer left.
func (s *Store) CompareAndPutState(ctx context.Context, key string, old, new []byte) (bool, error) {
	var tag pgconn.CommandTag
	err := retry(ctx, func() error {
		var err error
		if old == nil {
			tag, err = s.pool.Exec(ctx, `INSERT INTO state (key, value, updated_at) VALUES ($1, $2, $3)
				ON CONFLICT (key) DO NOTHING`, key, blob(new), time.Now())
		} else {
			tag, err = s.pool.Exec(ctx, `UPDATE state SET value = $2, updated_at = $3 WHERE key = $1 AND value = $4`,
				key, blob(new), time.Now(), old)
		}
		return err
	})
	if err != nil {
		return false, fmt.Errorf("compare and put state %q: %w", key, err)
	}
	return tag.RowsAffected() == 1, nil
}

// Receipts returns the versions held by the receipts of function for keys, for the keys
// that have one, in one statement however many keys.
func (s *Store) Receipts(ctx context.Context, function string, keys []string) (map[string]string, error) {
	out := make(map[string]string)
	if len(keys) == 0 {
		return out, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT key, version FROM receipts WHERE function = $1 AND key = ANY($2)`, function, keys)
	if err != nil {
		return nil, fmt.Errorf("receipts of %s: %w", function, err)
	}
	var key, version string
	_, err = pgx.ForEachRow(rows, []any{&key, &version}, func() error {
		out[key] = version
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("receipts of %s: %w", function, err)
	}
	return out, nil
}

// ForgetReceipts deletes the receipts of function for keys, in one statement.
func (s *Store) ForgetReceipts(ctx context.Context, function string, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	err := retry(ctx, func() error {
		_, err := s.pool.Exec(ctx, `DELETE FROM receipts WHERE function = $1 AND key = ANY($2)`, function, sortedCopy(keys))
		return err
	})
	if err != nil {
		return fmt.Errorf("forget receipts of %s: %w", function, err)
	}
	return nil
}

// ReceiptKeys lists up to limit receipt keys of function starting with prefix and
// greater than after, in byte order (the "C" collation of the key column). The prefix
// becomes a range of the primary key, so that a page reads only its own rows.
func (s *Store) ReceiptKeys(ctx context.Context, function, prefix, after string, limit int) ([]string, error) {
	if limit <= 0 {
		return nil, nil
	}
	q := `SELECT key FROM receipts WHERE function = $1`
	args := []any{function, limit}
	// Whichever of prefix and after is the stricter lower bound.
	if after < prefix {
		q += ` AND key >= $3`
		args = append(args, prefix)
	} else {
		q += ` AND key > $3`
		args = append(args, after)
	}
	if end, ok := prefixEnd(prefix); ok {
		q += ` AND key < $4`
		args = append(args, end)
	} else if prefix != "" {
		q += ` AND starts_with(key, $4)`
		args = append(args, prefix)
	}
	q += ` ORDER BY key LIMIT $2`
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("receipt keys of %s: %w", function, err)
	}
	var out []string
	var key string
	if _, err := pgx.ForEachRow(rows, []any{&key}, func() error { out = append(out, key); return nil }); err != nil {
		return nil, fmt.Errorf("receipt keys of %s: %w", function, err)
	}
	return out, nil
}

// prefixEnd returns the smallest valid UTF-8 string greater, in byte order, than every
// string that starts with prefix: prefix with its last character replaced by the next
// one (dropping last characters that have none). It returns false when there is none
// (prefix is empty, or only U+10FFFF) or prefix is not valid UTF-8.
func prefixEnd(prefix string) (string, bool) {
	if !utf8.ValidString(prefix) {
		return "", false
	}
	rs := []rune(prefix)
	for i := len(rs) - 1; i >= 0; i-- {
		next := rs[i] + 1
		if next >= 0xD800 && next <= 0xDFFF {
			next = 0xE000
		}
		if next <= utf8.MaxRune {
			rs[i] = next
			return string(rs[:i+1]), true
		}
	}
	return "", false
}
