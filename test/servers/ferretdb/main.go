// Command ferretdb runs FerretDB v1.24.2 (Apache-2.0) over SQLite, so Stowage's mongodb:// adapter is tested
// against a real server speaking the MongoDB wire protocol where no MongoDB binary can be installed.
//
// It embeds the `ferretdb` package instead of building FerretDB's own command: `go install …/cmd/ferretdb`
// gives a binary that panics at start, because the version files it needs are not in the module zip
// (FerretDB issue #2982). Usage: ferretdb -listen 127.0.0.1:27017 -dir /path/to/data
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
	debug := flag.Bool("debug", false, "log every request")
	flag.Parse()
	if err := run(*listen, *dir, *debug); err != nil {
		fmt.Fprintln(os.Stderr, "ferretdb:", err)
		os.Exit(1)
	}
}

func run(listen, dir string, debug bool) error {
	if dir == "" {
		return fmt.Errorf("-dir is required")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return err
	}
	level := slog.LevelWarn
	if debug {
		level = slog.LevelDebug
	}
	f, err := ferretdb.New(&ferretdb.Config{
		Listener: ferretdb.ListenerConfig{TCP: listen},
		Logger:   slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
		Handler:  "sqlite",
		// FerretDB wants a URI naming a folder, and it must end in a slash.
		SQLiteURL: "file:" + abs + "/",
	})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return f.Run(ctx)
}
