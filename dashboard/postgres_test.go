package dashboard_test

import (
	"net/http"
	"testing"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestPostgres: the pages and the actions on a PostgreSQL store.
func TestPostgres(t *testing.T) {
	t.Parallel()
	url := pgtest.Shared(t).CreateDB(t, "dashboard")
	b := setupOn(t, `"`+url+`&schema=dash"`, "")
	id := b.failed(1)[0]
	ok := b.invoke("ok", `{"n": 1}`, "")
	b.waitState(ok, fnhost.StateSucceeded)
	wantContains(t, "overview", b.mustGet("/dashboard/").body, `data-count="failed">1<`, id)
	wantContains(t, "failed filter", b.mustGet("/dashboard/invocations?state=failed&function=toggle&trigger=api&range=1h").body, id)
	wantContains(t, "functions", b.mustGet("/dashboard/functions").body, "toggle", "Run now")
	for _, page := range []string{"queues", "failed", "servers", "invocations/" + ok} {
		b.mustGet("/dashboard/" + page)
	}
	b.pass.Store(true)
	detail := "/dashboard/invocations/" + id
	wantStatus(t, "retry", b.post(detail, detail+"/retry", nil, nil), http.StatusSeeOther)
	b.waitState(id, fnhost.StateSucceeded)
	wantContains(t, "detail after retry", b.mustGet(detail).body, "passed")
}
