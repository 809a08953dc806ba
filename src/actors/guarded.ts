/** What a caught error says, stack first. */
export const describeError = (error: unknown): string => (error instanceof Error ? (error.stack ?? error.message) : String(error))

/**
 * Wraps an intent listener: one that throws must not take the process down
 * (xstate rethrows a listener's error as an uncaught exception), so the error
 * is reported and the node goes on.
 */
export const guarded =
  <E>(report: (where: string, message: string) => void, where: string, handler: (e: E) => void) =>
  (e: E): void => {
    try {
      handler(e)
    } catch (error) {
      report(where, describeError(error))
    }
  }
