package portable

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/caddy-sso/caddy-sso/store/postgres/pgtest"
)

// A PostgreSQL View runs its fn again when the connection is lost part-way
// (store/postgres); an export that had written lines by then cannot take
// them back. Such an export must fail, not write the lines twice behind a
// second header and report success: that backup no restore reads.
func TestExportWhoseConnectionIsLostFails(t *testing.T) {
	ctx := context.Background()
	db := openPostgres(t)
	fill(t, db, 50)
	admin, err := pgx.Connect(ctx, pgtest.AdminDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	killed, headers := false, 0
	_, err = walk(ctx, db, nil, func(l *line) error {
		if l.Header != nil {
			headers++
		}
		if l.User == nil || killed {
			return nil
		}
		killed = true
		// Every client backend but the admin's: the export's is among them.
		_, err := admin.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'")
		return err
	})
	if !killed {
		t.Fatal("the export wrote no user")
	}
	if headers != 1 {
		t.Errorf("the export wrote %d headers", headers)
	}
	if !errors.Is(err, errReadCutShort) {
		t.Fatalf("export whose connection was lost part-way = %v, want %v", err, errReadCutShort)
	}
}
