package dashboard

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/fnhost/fnhost/store"
)

const (
	sessionCookie = "fnhost_session"
	csrfCookie    = "fnhost_csrf"
	flashCookie   = "fnhost_flash"
	// sessionLife is how long a login lasts.
	sessionLife = 12 * time.Hour
	// secretState is the store key of the secret that signs the forms of an open
	// dashboard, shared by every instance on the store.
	secretState = "dashboard/secret"
)

// keys derives the keys that sign sessions and CSRF tokens. With an API key both come
// from it, so that every instance sharing it accepts the same sessions and changing it
// ends them all. Without one, the CSRF key is a random secret kept in the store.
func keys(ctx context.Context, st store.Store, apiKey string) (session, csrf []byte, err error) {
	if apiKey != "" {
		return derive([]byte(apiKey), "fnhost dashboard session"), derive([]byte(apiKey), "fnhost dashboard csrf"), nil
	}
	for range 5 {
		secret, err := st.GetState(ctx, secretState)
		if err != nil {
			return nil, nil, fmt.Errorf("read the form secret: %w", err)
		}
		if len(secret) >= 32 {
			return nil, derive(secret, "fnhost dashboard csrf"), nil
		}
		fresh := make([]byte, 32)
		if _, err := rand.Read(fresh); err != nil {
			return nil, nil, err
		}
		if _, err := st.CompareAndPutState(ctx, secretState, secret, fresh); err != nil {
			return nil, nil, fmt.Errorf("store the form secret: %w", err)
		}
		// Read it back: another instance may have stored its own first.
	}
	return nil, nil, fmt.Errorf("the form secret in %s keeps changing", secretState)
}

func derive(key []byte, label string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(label))
	return m.Sum(nil)
}

func sign(key []byte, msg string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// secureRequest reports whether the browser reached the dashboard over TLS, directly or
// through a proxy that says so: the cookies are then marked Secure.
func secureRequest(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

func (d *Dashboard) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: Prefix, MaxAge: maxAge,
		HttpOnly: true, Secure: secureRequest(r), SameSite: http.SameSiteStrictMode,
	})
}

// errAnswered stops a request that has been answered already (with a redirect).
var errAnswered = &httpError{}

// allow decides whether r may go on: the dashboard's own checks before any page. When
// it answers the request itself (a redirect to the login form) it returns errAnswered.
func (d *Dashboard) allow(w http.ResponseWriter, r *http.Request) error {
	login := r.URL.Path == Prefix+"login"
	if d.cfg.APIKey == "" {
		if !loopbackHost(r.Host) {
			return &httpError{status: http.StatusForbidden, msg: fmt.Sprintf("This dashboard has no API key, so it only answers "+
				"requests addressed to a loopback host such as localhost or 127.0.0.1, not %q. Set host.api_key to reach it "+
				"by another name.", r.Host)}
		}
		if login {
			_ = d.redirect(w, r, Prefix, "")
			return errAnswered
		}
	} else if !login && !d.validSession(r) {
		if r.Method != http.MethodGet || r.URL.Path == Prefix+"live" {
			return &httpError{status: http.StatusUnauthorized, msg: "Your session has ended: log in again."}
		}
		next := r.URL.RequestURI()
		http.Redirect(w, r, Prefix+"login?next="+url.QueryEscape(next), http.StatusSeeOther)
		return errAnswered
	}
	if r.Method == http.MethodPost {
		if d.cfg.ReadOnly && r.URL.Path != Prefix+"login" && r.URL.Path != Prefix+"logout" {
			return &httpError{status: http.StatusForbidden, msg: "This dashboard is read-only (host.dashboard.read_only): it offers no action."}
		}
		if err := d.checkCSRF(r); err != nil {
			return err
		}
	}
	return nil
}

// loopbackHost reports whether a Host header names this machine's loopback: localhost,
// a name under .localhost, or a loopback IP.
func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// newSession returns the value of a session cookie that expires at exp.
func (d *Dashboard) newSession(exp time.Time) string {
	nonce := make([]byte, 16)
	_, _ = rand.Read(nonce)
	body := "v1." + strconv.FormatInt(exp.Unix(), 10) + "." + base64.RawURLEncoding.EncodeToString(nonce)
	return body + "." + sign(d.sessionKey, body)
}

// validSession reports whether r carries a session cookie this dashboard signed and
// that has not expired.
func (d *Dashboard) validSession(r *http.Request) bool {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(c.Value, '.')
	if i < 0 {
		return false
	}
	body, mac := c.Value[:i], c.Value[i+1:]
	if subtle.ConstantTimeCompare([]byte(mac), []byte(sign(d.sessionKey, body))) != 1 {
		return false
	}
	parts := strings.Split(body, ".")
	if len(parts) != 3 || parts[0] != "v1" {
		return false
	}
	exp, err := strconv.ParseInt(parts[1], 10, 64)
	return err == nil && d.cfg.Now().Unix() < exp
}

// csrfToken returns the token the forms of the page carry: a signature of the
// browser's CSRF cookie, which it sets when missing.
func (d *Dashboard) csrfToken(w http.ResponseWriter, r *http.Request) string {
	v := ""
	if c, err := r.Cookie(csrfCookie); err == nil && len(c.Value) >= 22 {
		v = c.Value
	} else {
		b := make([]byte, 24)
		_, _ = rand.Read(b)
		v = base64.RawURLEncoding.EncodeToString(b)
		d.setCookie(w, r, csrfCookie, v, 0)
		// The form rendered now must match what the next request sends.
		r.AddCookie(&http.Cookie{Name: csrfCookie, Value: v})
	}
	return sign(d.csrfKey, v)
}

// checkCSRF refuses a POST that does not come from a page of this dashboard: its form
// must carry the token of the browser's CSRF cookie, and a browser that says where the
// request comes from must say this origin.
func (d *Dashboard) checkCSRF(r *http.Request) error {
	refuse := &httpError{status: http.StatusForbidden, msg: "This form expired or did not come from this dashboard. Reload the page and try again."}
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return refuse
	}
	if origin := r.Header.Get("Origin"); origin != "" && origin != "null" {
		u, err := url.Parse(origin)
		if err != nil || u.Host != r.Host {
			return refuse
		}
	}
	c, err := r.Cookie(csrfCookie)
	if err != nil {
		return refuse
	}
	r.Body = http.MaxBytesReader(nil, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil {
		return badRequest("The form could not be read: %v", err)
	}
	got := r.PostForm.Get("csrf")
	if subtle.ConstantTimeCompare([]byte(got), []byte(sign(d.csrfKey, c.Value))) != 1 {
		return refuse
	}
	return nil
}

func (d *Dashboard) loginPage(w http.ResponseWriter, r *http.Request) error {
	if d.validSession(r) {
		return d.redirect(w, r, safeNext(r.URL.Query().Get("next")), "")
	}
	return d.renderLogin(w, r, http.StatusOK, "")
}

func (d *Dashboard) renderLogin(w http.ResponseWriter, r *http.Request, status int, problem string) error {
	d.render(w, r, status, "login", "Log in", map[string]any{
		"Next": safeNext(r.FormValue("next")), "Problem": problem, "Insecure": !secureRequest(r) && !loopbackHost(r.Host),
	})
	return nil
}

func (d *Dashboard) login(w http.ResponseWriter, r *http.Request) error {
	ip := clientIP(r)
	if wait := d.limiter.wait(ip, d.cfg.Now()); wait > 0 {
		return d.renderLogin(w, r, http.StatusTooManyRequests,
			fmt.Sprintf("Too many wrong keys from %s: try again in %s.", ip, wait.Round(time.Second)))
	}
	key := r.PostForm.Get("key")
	if subtle.ConstantTimeCompare([]byte(key), []byte(d.cfg.APIKey)) != 1 {
		d.limiter.failed(ip, d.cfg.Now())
		d.cfg.Logger.Warn("dashboard: wrong key in the login form", "remote", ip)
		return d.renderLogin(w, r, http.StatusUnauthorized, "That is not the API key of this host.")
	}
	d.limiter.reset(ip)
	exp := d.cfg.Now().Add(sessionLife)
	d.setCookie(w, r, sessionCookie, d.newSession(exp), int(sessionLife/time.Second))
	return d.redirect(w, r, safeNext(r.PostForm.Get("next")), "")
}

func (d *Dashboard) logout(w http.ResponseWriter, r *http.Request) error {
	d.setCookie(w, r, sessionCookie, "", -1)
	if d.cfg.APIKey == "" {
		return d.redirect(w, r, Prefix, "")
	}
	return d.redirect(w, r, Prefix+"login", "You are logged out.")
}

func clientIP(r *http.Request) string {
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return h
	}
	return r.RemoteAddr
}

// loginLimiter slows down guessing: after 5 wrong keys from one address, that address
// waits a minute for each further try.
type loginLimiter struct {
	mu    sync.Mutex
	fails map[string]*loginFails
}

type loginFails struct {
	n     int
	until time.Time
	last  time.Time
}

func newLoginLimiter() *loginLimiter { return &loginLimiter{fails: map[string]*loginFails{}} }

func (l *loginLimiter) wait(ip string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if f := l.fails[ip]; f != nil && now.Before(f.until) {
		return f.until.Sub(now)
	}
	return 0
}

func (l *loginLimiter) failed(ip string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, f := range l.fails { // forget addresses quiet for an hour
		if now.Sub(f.last) > time.Hour {
			delete(l.fails, k)
		}
	}
	f := l.fails[ip]
	if f == nil {
		f = &loginFails{}
		l.fails[ip] = f
	}
	f.n++
	f.last = now
	if f.n >= 5 {
		f.until = now.Add(time.Minute)
	}
}

func (l *loginLimiter) reset(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.fails, ip)
}

// setFlash leaves a message for the next page the browser shows.
func setFlash(w http.ResponseWriter, r *http.Request, msg string) {
	http.SetCookie(w, &http.Cookie{
		Name: flashCookie, Value: base64.RawURLEncoding.EncodeToString([]byte(msg)), Path: Prefix, MaxAge: 60,
		HttpOnly: true, Secure: secureRequest(r), SameSite: http.SameSiteStrictMode,
	})
}

// takeFlash returns the message left for this page, and clears it.
func takeFlash(w http.ResponseWriter, r *http.Request) string {
	c, err := r.Cookie(flashCookie)
	if err != nil {
		return ""
	}
	http.SetCookie(w, &http.Cookie{Name: flashCookie, Value: "", Path: Prefix, MaxAge: -1, HttpOnly: true,
		Secure: secureRequest(r), SameSite: http.SameSiteStrictMode})
	b, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil || len(b) > 500 || !utf8.Valid(b) {
		return ""
	}
	return string(b)
}
