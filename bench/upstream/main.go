// Command upstream is the small app behind the proxies that bench/proxy.sh
// measures: a plain net/http server that answers every request with one
// short line naming the X-Forwarded-User it was given, so that the script
// can check which peers hand it an identity. It is a separate process, so
// that its CPU is not counted as the proxy's.
//
//	go run ./bench/upstream -listen 127.0.0.1:18500
package main

import (
	"flag"
	"log"
	"net/http"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:18500", "address to serve on")
	flag.Parse()
	srv := &http.Server{
		Addr:              *listen,
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Write([]byte("hello " + r.Header.Get("X-Forwarded-User") + "\n")) //nolint:errcheck // the client went away
		}),
	}
	log.Fatal(srv.ListenAndServe())
}
