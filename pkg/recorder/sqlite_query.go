package recorder

import (
	"context"
	"errors"
)

// Jobs implements Store.
func (s *SQLite) Jobs(ctx context.Context, f JobFilter) (Page, error) {
	return Page{}, errors.New("sqlite: Jobs: not implemented yet")
}

// Stats implements Store.
func (s *SQLite) Stats(ctx context.Context, q StatsQuery) ([]ProviderStats, error) {
	return nil, errors.New("sqlite: Stats: not implemented yet")
}

// Prune implements Store.
func (s *SQLite) Prune(ctx context.Context, o PruneOptions) (Pruned, error) {
	return Pruned{}, errors.New("sqlite: Prune: not implemented yet")
}
