package postgres

import (
	"context"
	"encoding/hex"
	"hash/fnv"
	"time"

	"github.com/jackc/pgx/v5"
)

// channelName is the LISTEN/NOTIFY channel of the instances of schema: fnhost_<schema>,
// or fnhost_ and a hash of the schema when that is longer than PostgreSQL's 63-byte
// identifiers.
func channelName(schema string) string {
	name := "fnhost_" + schema
	if len(name) <= 63 {
		return name
	}
	h := fnv.New64a()
	h.Write([]byte(schema))
	return "fnhost_" + hex.EncodeToString(h.Sum(nil))
}

// Notify returns a channel that receives (coalesced: it holds at most one value) when
// an instance of the store, this one or another, made invocations ready: this one
// wakes it at once, the others through their notifications. The first
// call starts a connection that LISTENs to the others; when it is lost, it is made
// again (waiting longer after each failure, up to 5 s), and the channel receives once
// it is back, since notifications may have been missed meanwhile.
func (s *Store) Notify() <-chan struct{} {
	s.listenOnce.Do(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.closed {
			return
		}
		s.wg.Add(1)
		go s.listen()
	})
	return s.notify
}

// wake makes Notify's channel receive.
func (s *Store) wake() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// announce tells this instance and, through a notification, the others that work
// became ready. It is called after the commit that made it ready.
func (s *Store) announce() {
	s.wake()
	select {
	case s.sendReq <- struct{}{}:
	default:
	}
}

// sender sends the notifications that announce asks for, one at a time and at most one
// every notifyInterval, each in a transaction of its own: the requests that come
// while one is sent are coalesced into the next. It sends the last one asked for before
// Close.
func (s *Store) sender() {
	defer s.wg.Done()
	send := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		// A lost notification costs the other instances a poll interval at most.
		_, _ = s.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, s.channel, s.token)
	}
	for {
		select {
		case <-s.quit:
			select {
			case <-s.sendReq:
				send()
			default:
			}
			return
		case <-s.sendReq:
		}
		send()
		select {
		case <-s.quit:
		case <-time.After(notifyInterval):
		}
	}
}

// listen keeps a connection that LISTENs to the store's channel and wakes Notify's
// channel for every notification of another instance, until Close.
func (s *Store) listen() {
	defer s.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-s.quit
		cancel()
	}()
	cfg := s.pool.Config().ConnConfig
	backoff := 50 * time.Millisecond
	for connected := false; ctx.Err() == nil; {
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err == nil {
			if _, err = conn.Exec(ctx, `LISTEN `+pgx.Identifier{s.channel}.Sanitize()); err != nil {
				_ = conn.Close(context.Background())
			}
		}
		if err != nil {
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		if connected {
			s.wake() // notifications may have come while the connection was down
		}
		connected = true
		for {
			n, err := conn.WaitForNotification(ctx)
			if err != nil {
				break
			}
			if n.Payload != s.token { // announce woke this instance already
				s.wake()
			}
		}
		closeCtx, cancelClose := context.WithTimeout(context.Background(), time.Second)
		_ = conn.Close(closeCtx)
		cancelClose()
	}
}
