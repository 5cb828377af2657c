/**
 * Names for the server's schemas. Every type here is an alias of the generated
 * `schema.d.ts` (from `openapi.json`, `npm run gen:api`); nothing is written by hand.
 */
import type { components } from './schema';

type S = components['schemas'];

export type Me = S['Me'];
export type Role = S['Role'];
export type ProjectView = S['ProjectView'];
export type ProjectStats = S['ProjectStats'];
export type SceneTypeView = S['SceneTypeView'];
export type SegmentView = S['SegmentView'];
export type SegmentPage = S['SegmentPage'];
export type SegmentStatus = S['SegmentStatus'];
export type NewSegmentBody = S['NewSegmentBody'];
export type SubmittedSegments = S['SubmittedSegments'];
export type RetryHistory = S['RetryHistory'];
export type AttemptView = S['AttemptView'];
export type AttemptStatus = S['AttemptStatus'];
export type CheckView = S['CheckView'];
export type Verdict = S['Verdict'];
export type ReviewReason = S['ReviewReason'];
export type SceneTypePolicyView = S['SceneTypePolicyView'];
export type RetryPolicy = S['RetryPolicy'];
export type PolicyOverrides = S['PolicyOverrides'];
export type PolicySource = S['PolicySource'];
export type SelectionMode = S['SelectionMode'];
export type ReviewQueue = S['ReviewQueue'];
export type ReviewItem = S['ReviewItem'];
export type AcceptBody = S['AcceptBody'];
export type RejectBody = S['RejectBody'];
export type RerunOverrides = S['RerunOverrides'];
export type RerunResult = S['RerunResult'];
export type ErrorBody = S['ErrorBody'];
export type ErrorDetail = S['ErrorDetail'];
export type StoredEvent = S['Event'];
export type Parameters = S['Parameters'];
export type QueueView = S['QueueView'];
export type QueueEntry = S['QueueEntry'];
export type QueuedAttempt = S['QueuedAttempt'];
export type BulkAction = S['BulkAction'];
export type BulkReviewBody = S['BulkReviewBody'];
export type BulkReviewResult = S['BulkReviewResult'];
export type LedgerPage = S['LedgerPage'];
export type LedgerEntry = S['LedgerEntry'];
export type SpendSeriesView = S['SpendSeriesView'];
export type CreateProject = S['CreateProject'];
export type UpdateProject = S['UpdateProject'];
export type BudgetFigures = S['BudgetFigures'];
export type CreateSceneType = S['CreateSceneType'];
export type CheckConfig = S['CheckConfig'];

export const REVIEW_REASONS: readonly ReviewReason[] = [
  'all_attempts_failed',
  'non_retriable_check',
  'budget_exhausted',
  'retry_disabled',
  'systematic_failure',
  'qa_error',
  'infra_error',
  'workflow_error',
];

export const SEGMENT_STATUSES: readonly SegmentStatus[] = [
  'queued',
  'generating',
  'retrying',
  'passed',
  'needs_review',
  'approved',
  'rejected',
  'cancelled',
];
export type ApiToken = S['ApiToken'];
export type CreateTokenBody = S['CreateTokenBody'];
export type CreatedToken = S['CreatedToken'];
export type SessionView = S['SessionView'];
