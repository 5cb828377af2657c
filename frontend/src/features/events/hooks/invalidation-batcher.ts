import type { QueryClient, QueryKey } from '@tanstack/react-query';

/**
 * Collects query keys to invalidate and flushes them at most once per interval, so a burst of
 * `progress` events costs one refetch per query, not one per event.
 */
export class InvalidationBatcher {
  private pending = new Map<string, QueryKey>();
  private timer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    private readonly qc: QueryClient,
    private readonly intervalMs: number,
  ) {}

  add(key: QueryKey): void {
    this.pending.set(JSON.stringify(key), key);
    if (this.timer === null) this.timer = setTimeout(() => this.flush(), this.intervalMs);
  }

  flush(): void {
    this.timer = null;
    const keys = [...this.pending.values()];
    this.pending.clear();
    for (const queryKey of keys) void this.qc.invalidateQueries({ queryKey });
  }

  dispose(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.pending.clear();
  }
}
