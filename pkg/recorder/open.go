package recorder

import (
	"context"
	"strings"
)

// Open opens the store database names (see Config.Database): PostgreSQL
// for a postgres:// or postgresql:// URL, and otherwise the SQLite file at
// that path. Either way the schema is brought up to date first.
func Open(ctx context.Context, database string) (Store, error) {
	if IsPostgresURL(database) {
		return OpenPostgres(ctx, database)
	}
	return OpenSQLite(ctx, database)
}

// IsPostgresURL reports whether database is a PostgreSQL URL rather than a
// SQLite file path. The scheme is case-insensitive, as in any URL.
func IsPostgresURL(database string) bool {
	scheme, _, ok := strings.Cut(database, "://")
	return ok && (strings.EqualFold(scheme, "postgres") || strings.EqualFold(scheme, "postgresql"))
}
