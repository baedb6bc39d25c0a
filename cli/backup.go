package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/caddy-sso/caddy-sso/caddymodule"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/backend"
	"github.com/caddy-sso/caddy-sso/store/portable"
)

// Backups are in store/portable's format (gzip'd JSON Lines), the same for
// both backends, so a backup of a bbolt store restores into PostgreSQL and
// the other way round.

func backupCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "backup <file>",
		Short: "Writes a consistent copy of the store to a file",
		Long: `Writes a consistent snapshot of the store (users, groups, sessions, keys,
single-use IDs, audit trail) to a file, from the running Caddy or, with
--store, from a stopped instance's store. The format is the same for both
backends. The file holds keys and session hashes: keep it as private as the
store. It is written beside its final name, read back in full, and then
renamed into place.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return withClient(c, true, func(cl client) error {
				n, counts, err := writeBackup(c.Context(), cl, args[0])
				if err != nil {
					return err
				}
				if asJSON(c) {
					return printJSON(c, map[string]any{"file": args[0], "bytes": n, "counts": counts})
				}
				fmt.Fprintf(c.OutOrStdout(), "backup written to %s (%d bytes: %s)\n", args[0], n, describe(counts))
				return nil
			})
		},
	}
}

func restoreCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "restore <file>",
		Short: "Restores a backup into a stopped instance's store (offline only)",
		Long: `Restores a backup made by 'caddy sso backup' into the store given by --store
(bolt:PATH, postgres:DSN, or a file path; default: the bbolt file in Caddy's
data directory). Caddy must not be using the store.

A bbolt target is written as a new file beside the old one and renamed into
place, so it is either the old store or the complete new one. A PostgreSQL
target must be empty unless --force is given. The file is read in full and
checked before anything is written. A bbolt file (what older versions wrote as
a backup) is accepted too.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			raw, _ := c.Flags().GetString("store")
			if raw == "" {
				raw = caddymodule.DefaultStorePath()
			}
			dst, err := backend.Parse(raw)
			if err != nil {
				return err
			}
			force, _ := c.Flags().GetBool("force")
			counts, err := restore(c.Context(), args[0], dst, force, progressTo(c))
			if err != nil {
				return err
			}
			if asJSON(c) {
				return printJSON(c, map[string]any{"store": dst.String(), "counts": counts})
			}
			fmt.Fprintf(c.OutOrStdout(), "%s restored from %s (%s); start Caddy to use it\n", dst, args[0], describe(counts))
			return nil
		},
	}
	cmd.Flags().Bool("force", false, "Import into a PostgreSQL store that already holds records")
	return cmd
}

func migrateCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "migrate --from <store> --to <store>",
		Short: "Copies a whole store to another backend (offline)",
		Long: `Copies everything in one store to another: users, groups, tombstones,
sessions with their sealed tokens, single-use IDs, keys and the audit trail
(its sequence numbers kept). Stores are written bolt:PATH or postgres:DSN.
Neither may be in use by a running Caddy. The target must be empty unless
--force is given. Counts are compared afterwards; a mismatch is an error.

  caddy sso migrate --from bolt:/var/lib/caddy/sso.db --to postgres:"$SSO_DATABASE_URL"`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			fromRaw, _ := c.Flags().GetString("from")
			toRaw, _ := c.Flags().GetString("to")
			from, err := backend.Parse(fromRaw)
			if err != nil {
				return fmt.Errorf("--from: %w", err)
			}
			to, err := backend.Parse(toRaw)
			if err != nil {
				return fmt.Errorf("--to: %w", err)
			}
			force, _ := c.Flags().GetBool("force")
			ctx := c.Context()
			from.ReadOnly = true
			src, err := openOfflineSpec(ctx, from)
			if err != nil {
				return err
			}
			defer src.Close()
			if to.Backend == backend.Bolt {
				if err := os.MkdirAll(filepath.Dir(to.Path), 0o700); err != nil {
					return err
				}
			}
			dst, err := openOfflineSpec(ctx, to)
			if err != nil {
				return err
			}
			defer dst.Close()
			rep, err := portable.Migrate(ctx, src, dst, portable.ImportOptions{Force: force, Progress: progressTo(c)})
			if err != nil {
				return fmt.Errorf("migrating %s to %s: %w", from, to, err)
			}
			if asJSON(c) {
				return printJSON(c, rep)
			}
			fmt.Fprintf(c.OutOrStdout(), "copied %s from %s to %s; counts match\n", describe(rep.Copied), from, to)
			return nil
		},
	}
	cmd.Flags().String("from", "", "The store to copy (bolt:PATH or postgres:DSN)")
	cmd.Flags().String("to", "", "The store to fill (bolt:PATH or postgres:DSN)")
	cmd.Flags().Bool("force", false, "Copy into a store that already holds records")
	return cmd
}

// progressTo reports a long copy's progress on c's error stream, so that
// --json output stays clean.
func progressTo(c *cobra.Command) portable.Progress {
	return func(kind string, done int) {
		fmt.Fprintf(c.ErrOrStderr(), "  %s: %d\n", kind, done)
	}
}

func describe(c portable.Counts) string {
	return fmt.Sprintf("%d users, %d groups, %d sessions, %d tombstones, %d audit events, %d keys",
		c.Users, c.Groups, c.Sessions, c.Tombstones, c.AuditEvents, c.Secrets)
}

// writeBackup writes the backup to a temporary file beside path, reads it
// back in full, and renames it into place.
func writeBackup(ctx context.Context, cl client, path string) (int64, portable.Counts, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return 0, portable.Counts{}, err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		return 0, portable.Counts{}, err
	}
	n, err := cl.Backup(ctx, tmp)
	if err == nil {
		err = tmp.Sync()
	}
	if err == nil {
		_, err = tmp.Seek(0, io.SeekStart)
	}
	var counts portable.Counts
	if err == nil {
		if counts, err = portable.Verify(tmp); err != nil {
			err = fmt.Errorf("the backup does not read back: %w", err)
		}
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, counts, err
	}
	return n, counts, os.Rename(tmp.Name(), path)
}

// boltMagic is where a bbolt file keeps its magic number (the meta page's
// header), to accept a bbolt file as a backup.
var boltMagic = []byte{0xed, 0xda, 0x0c, 0xed}

// isBoltFile reports whether path is a bbolt file rather than a portable
// backup (gzip).
func isBoltFile(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	head := make([]byte, 32)
	n, _ := io.ReadFull(f, head)
	return bytes.Contains(head[:n], boltMagic)
}

// restore imports the backup at src into dst.
func restore(ctx context.Context, src string, dst backend.Spec, force bool, progress portable.Progress) (portable.Counts, error) {
	load, err := backupSource(ctx, src)
	if err != nil {
		return portable.Counts{}, err
	}
	if dst.Backend != backend.Bolt {
		st, err := openOfflineSpec(ctx, dst)
		if err != nil {
			return portable.Counts{}, err
		}
		defer st.Close()
		return load(st, force, progress)
	}
	// A bbolt target: build the new store beside the old one, and swap.
	if err := refuseIfLocked(dst.Path); err != nil {
		return portable.Counts{}, err
	}
	if err := os.MkdirAll(filepath.Dir(dst.Path), 0o700); err != nil {
		return portable.Counts{}, err
	}
	tmpPath := filepath.Join(filepath.Dir(dst.Path), "."+filepath.Base(dst.Path)+".restore")
	_ = os.Remove(tmpPath) // left by an interrupted restore
	defer os.Remove(tmpPath)
	st, err := backend.Open(ctx, backend.Spec{Backend: backend.Bolt, Path: tmpPath}, nil)
	if err != nil {
		return portable.Counts{}, err
	}
	counts, err := load(st, false, progress)
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return counts, err
	}
	// Check again right before the swap: Caddy may have started meanwhile.
	if err := refuseIfLocked(dst.Path); err != nil {
		return counts, err
	}
	if err := os.Rename(tmpPath, dst.Path); err != nil {
		return counts, err
	}
	if dir, err := os.Open(filepath.Dir(dst.Path)); err == nil {
		_ = dir.Sync()
		_ = dir.Close()
	}
	return counts, nil
}

// backupSource checks the backup at path and returns what loads it into a
// store: an Import of a portable backup, or a Migrate from a bbolt file.
func backupSource(ctx context.Context, path string) (func(st store.Store, force bool, progress portable.Progress) (portable.Counts, error), error) {
	if isBoltFile(path) {
		src, err := openOfflineSpec(ctx, backend.Spec{Backend: backend.Bolt, Path: path, ReadOnly: true})
		if err != nil {
			return nil, fmt.Errorf("%s is not a usable store backup: %w", path, err)
		}
		return func(st store.Store, force bool, progress portable.Progress) (portable.Counts, error) {
			defer src.Close()
			rep, err := portable.Migrate(ctx, src, st, portable.ImportOptions{Force: force, Progress: progress})
			return rep.Copied, err
		}, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	_, err = portable.Verify(f)
	_ = f.Close()
	if err != nil {
		return nil, fmt.Errorf("%s is not a usable store backup: %w", path, err)
	}
	return func(st store.Store, force bool, progress portable.Progress) (portable.Counts, error) {
		f, err := os.Open(path)
		if err != nil {
			return portable.Counts{}, err
		}
		defer f.Close()
		return portable.Import(ctx, st, f, portable.ImportOptions{Force: force, Progress: progress})
	}, nil
}

// refuseIfLocked fails when a running Caddy holds the bbolt store at path.
func refuseIfLocked(path string) error {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	st, err := openOfflineSpec(context.Background(), backend.Spec{Backend: backend.Bolt, Path: path, ReadOnly: true})
	if errors.Is(err, errStoreInUse) {
		return fmt.Errorf("refusing to restore over %s: %w", path, err)
	}
	if err != nil {
		// A damaged store is no reason to refuse its replacement.
		return nil
	}
	return st.Close()
}
