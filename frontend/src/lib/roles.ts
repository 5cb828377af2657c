import type { Role } from '@/api/types';

const RANK: Record<Role, number> = { viewer: 0, creator: 1, admin: 2 };

/** A viewer reads; a creator also submits, selects and reviews; only an admin edits policies. */
export function atLeast(role: Role | undefined, min: Role): boolean {
  return role !== undefined && RANK[role] >= RANK[min];
}
