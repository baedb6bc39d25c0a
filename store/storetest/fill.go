package storetest

import (
	"context"
	"fmt"
	"testing"

	"github.com/caddy-sso/caddy-sso/store"
)

// FillSecrets writes about size bytes of random (incompressible) secrets
// into db, in 64 KiB secrets, perTx to a transaction: a store whose backup
// is larger than the socket buffers between a server and a client that
// stops reading (the kernel grows a send buffer up to tcp_wmem's maximum,
// 4 MiB).
func FillSecrets(t testing.TB, db store.Store, size, perTx int) {
	t.Helper()
	const each = 64 << 10
	for i := 0; i < size/each; i += perTx {
		err := db.Update(context.Background(), func(tx store.Tx) error {
			for j := i; j < i+perTx; j++ {
				if _, err := tx.Secret(fmt.Sprintf("filler-%05d", j), each); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}
