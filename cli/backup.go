package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/caddy-sso/caddy-sso/caddymodule"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/bolt"
)

func backupCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "backup <file>",
		Short: "Writes a consistent copy of the store to a file",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return withClient(c, true, func(cl client) error {
				n, err := writeBackup(c.Context(), cl, args[0])
				if err != nil {
					return err
				}
				if asJSON(c) {
					return printJSON(c, map[string]any{"file": args[0], "bytes": n})
				}
				fmt.Fprintf(c.OutOrStdout(), "backup written to %s (%d bytes)\n", args[0], n)
				return nil
			})
		},
	}
}

func restoreCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "restore <file>",
		Short: "Replaces a stopped instance's store with a backup (offline only)",
		Long: `Replaces the store file (--store, default: the one in Caddy's data
directory) with a backup made by 'caddy sso backup'. Caddy must be stopped:
the command refuses while the store is locked. The backup is checked, copied
next to the store and renamed into place, so the store is either the old one
or the complete new one.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			dst, _ := c.Flags().GetString("store")
			if dst == "" {
				dst = caddymodule.DefaultStorePath()
			}
			n, err := restore(args[0], dst)
			if err != nil {
				return err
			}
			if asJSON(c) {
				return printJSON(c, map[string]any{"file": dst, "bytes": n})
			}
			fmt.Fprintf(c.OutOrStdout(), "store %s restored from %s (%d bytes); start Caddy to use it\n", dst, args[0], n)
			return nil
		},
	}
}

// writeBackup writes the backup to a temporary file beside path, checks
// that it opens as a store, and renames it into place.
func writeBackup(ctx context.Context, cl client, path string) (int64, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp.Name())
	n, err := cl.Backup(ctx, tmp)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, err
	}
	if err := checkStoreFile(tmp.Name()); err != nil {
		return n, fmt.Errorf("the backup does not open as a store: %w", err)
	}
	return n, os.Rename(tmp.Name(), path)
}

var errStop = errors.New("stop")

// checkStoreFile opens a store file read-only and reads it once.
func checkStoreFile(path string) error {
	db, err := bolt.Open(path, bolt.Options{ReadOnly: true, LockTimeout: offlineLockTimeout})
	if err != nil {
		return err
	}
	defer db.Close()
	err = db.View(context.Background(), func(tx store.Tx) error {
		return tx.ForEachUser("", func(*store.User) error { return errStop })
	})
	if errors.Is(err, errStop) {
		err = nil
	}
	return err
}

// restore replaces dst with the backup at src while nothing holds dst.
func restore(src, dst string) (int64, error) {
	if err := checkStoreFile(src); err != nil {
		return 0, fmt.Errorf("%s is not a usable store backup: %w", src, err)
	}
	if err := refuseIfLocked(dst); err != nil {
		return 0, err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return 0, err
	}
	in, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".restore*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp.Name())
	n, err := io.Copy(tmp, in)
	if err == nil {
		err = tmp.Chmod(0o600)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, fmt.Errorf("copying %s: %w", src, err)
	}
	// Check again right before the swap: Caddy may have started meanwhile.
	if err := refuseIfLocked(dst); err != nil {
		return 0, err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return 0, err
	}
	if dir, err := os.Open(filepath.Dir(dst)); err == nil {
		_ = dir.Sync()
		dir.Close()
	}
	return n, nil
}

// refuseIfLocked fails when a running Caddy holds the store at path.
func refuseIfLocked(path string) error {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	db, err := bolt.Open(path, bolt.Options{ReadOnly: true, LockTimeout: offlineLockTimeout})
	if errors.Is(err, bolt.ErrLocked) {
		return fmt.Errorf("refusing to restore over %s: %w", path, errStoreInUse)
	}
	if err != nil {
		// A damaged store is no reason to refuse its replacement.
		return nil
	}
	return db.Close()
}
