// Command ferretdb runs FerretDB 1.24.2 (a MongoDB-wire server) on a PostgreSQL database,
// built from the pinned Go module through FerretDB's embeddable package: `go install` of
// FerretDB's own cmd/ferretdb builds, but that binary panics at start ("Invalid
// build/version/version.txt"), because the version check expects FerretDB's own main module.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen-addr", "127.0.0.1:27017", "host:port to serve the MongoDB wire protocol on")
	postgresURL := flag.String("postgresql-url", "postgres://127.0.0.1:5432/ferretdb", "PostgreSQL connection URL")
	version := flag.Bool("version", false, "print the FerretDB version and exit")
	flag.Parse()
	if *version {
		fmt.Println("ferretdb (gamevm wrapper) v1.24.2, handler postgresql")
		return
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	server, err := ferretdb.New(&ferretdb.Config{
		Listener:      ferretdb.ListenerConfig{TCP: *listen},
		Handler:       "postgresql",
		PostgreSQLURL: *postgresURL,
	})
	if err != nil {
		log.Fatalf("ferretdb: %v", err)
	}
	log.Printf("ferretdb: serving %s on %s", *postgresURL, *listen)
	server.Run(ctx)
}
