/**
 * A coordinator's term: an epoch and the rank of the server that claimed it,
 * ordered by epoch, then rank. The wire schema lives in
 * protocol/coordination.ts; this is its shape, so the machines depend on no
 * runtime code but xstate.
 */
export interface Term {
  readonly epoch: number
  readonly rank: number
}

export const termZero: Term = { epoch: 0, rank: 0 }

/** Negative, zero or positive as `a` is older than, equal to or newer than `b`. */
export const compareTerms = (a: Term, b: Term): number => a.epoch - b.epoch || a.rank - b.rank
