// Command boltstat prints, per bucket of a bbolt file, its keys and the
// bytes its pages use and occupy, and the file's free pages: where a
// store's size goes.
//
//	go run ./bench/boltstat /work/tmp-store/1m.db
package main

import (
	"fmt"
	"log"
	"os"
	"sort"

	bolt "go.etcd.io/bbolt"
)

func main() {
	if len(os.Args) != 2 {
		log.Fatal("usage: boltstat FILE")
	}
	db, err := bolt.Open(os.Args[1], 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	type row struct {
		name       string
		keys       int
		inuse, occ int
		depth      int
	}
	var rows []row
	var pageSize int
	err = db.View(func(tx *bolt.Tx) error {
		pageSize = tx.DB().Info().PageSize
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			s := b.Stats()
			rows = append(rows, row{string(name), s.KeyN, s.LeafInuse + s.BranchInuse,
				s.LeafAlloc + s.BranchAlloc, s.Depth})
			return nil
		})
	})
	if err != nil {
		log.Fatal(err)
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].occ > rows[j].occ })
	fi, _ := os.Stat(os.Args[1])
	fmt.Printf("%-20s %10s %10s %10s %6s %5s\n", "bucket", "keys", "used MiB", "pages MiB", "fill%", "depth")
	var used, occ int
	for _, r := range rows {
		fill := 0
		if r.occ > 0 {
			fill = 100 * r.inuse / r.occ
		}
		fmt.Printf("%-20s %10d %10.1f %10.1f %6d %5d\n", r.name, r.keys, float64(r.inuse)/(1<<20), float64(r.occ)/(1<<20), fill, r.depth)
		used += r.inuse
		occ += r.occ
	}
	st := db.Stats()
	fmt.Printf("total: used %.1f MiB in %.1f MiB of pages; free pages %d (%.1f MiB), pending %d; file %.1f MiB, page %d B\n",
		float64(used)/(1<<20), float64(occ)/(1<<20), st.FreePageN, float64(st.FreePageN*pageSize)/(1<<20), st.PendingPageN,
		float64(fi.Size())/(1<<20), pageSize)
}
