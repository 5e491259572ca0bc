// Command ferretdb runs FerretDB v1.24.2 (Apache-2.0) over PostgreSQL (its main backend) or SQLite, so
// Stowage's mongodb:// adapter is tested against a real server speaking the MongoDB wire protocol where no
// MongoDB binary can be installed.
//
// It embeds the `ferretdb` package instead of building FerretDB's own command: `go install …/cmd/ferretdb`
// gives a binary that panics at start, because the version files it needs are not in the module zip
// (FerretDB issue #2982). Usage:
//
//	ferretdb -listen 127.0.0.1:27017 -postgresql-url postgres://user@127.0.0.1:5432/db
//	ferretdb -listen 127.0.0.1:27017 -dir /path/to/sqlite-data
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:27017", "TCP address to listen on")
	dir := flag.String("dir", "", "folder for the SQLite databases (created if missing)")
	pgURL := flag.String("postgresql-url", "", "PostgreSQL database to store in (instead of -dir)")
	debug := flag.Bool("debug", false, "log every request")
	flag.Parse()
	if err := run(*listen, *dir, *pgURL, *debug); err != nil {
		fmt.Fprintln(os.Stderr, "ferretdb:", err)
		os.Exit(1)
	}
}

func run(listen, dir, pgURL string, debug bool) error {
	level := slog.LevelWarn
	if debug {
		level = slog.LevelDebug
	}
	config := ferretdb.Config{
		Listener: ferretdb.ListenerConfig{TCP: listen},
		Logger:   slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
	}
	switch {
	case pgURL != "" && dir != "":
		return fmt.Errorf("give -postgresql-url or -dir, not both")
	case pgURL != "":
		config.Handler = "postgresql"
		config.PostgreSQLURL = pgURL
	case dir != "":
		abs, err := filepath.Abs(dir)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(abs, 0o700); err != nil {
			return err
		}
		config.Handler = "sqlite"
		// FerretDB wants a URI naming a folder, and it must end in a slash.
		config.SQLiteURL = "file:" + abs + "/"
	default:
		return fmt.Errorf("-postgresql-url or -dir is required")
	}
	f, err := ferretdb.New(&config)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return f.Run(ctx)
}
