/**
 * Every limit of the wire protocol, in one place, each with its unit in its
 * name. Each one is crossed by a test in test/protocol.
 */
export const Limits = {
  /** A request or publication body larger than this gets an error reply. */
  frameBytesMax: 64 * 1024,
  /**
   * ZeroMQ `maxMessageSize` on every socket that reads from untrusted peers.
   * Past this ZeroMQ drops the connection itself (no reply is possible), so it
   * sits well above `frameBytesMax`: everything in between gets a clear error.
   */
  transportFrameBytesMax: 4 * 1024 * 1024,
  /** User and channel names, in Unicode code points. */
  nameCodePointsMax: 32,
  /** Text of one channel post or private message, in code points. */
  messageCodePointsMax: 4000,
  /** The longest `service` string we bother to echo back in an error. */
  serviceCharsMax: 32,
  /** Client request ids (our extension for safe retries). */
  requestIdCharsMax: 64,
  /** Origins (servers ever) in a replication vector. */
  originsMax: 1_024,
  /**
   * Frames between cluster members that may be larger than a client's:
   * catch-up replies. Well below `transportFrameBytesMax`.
   */
  clusterFrameBytesMax: 1024 * 1024,
  /**
   * A catch-up reply's ops, encoded: below `clusterFrameBytesMax` with room
   * for the envelope. Large pages, so that catching up costs one round trip
   * and one disk flush per megabyte, whatever the size of the posts.
   */
  replicateReplyBytesMax: 1000 * 1024,
  /**
   * A history reply's entries, encoded: below `frameBytesMax` with room for
   * the envelope (500 long posts would not fit in a frame a client accepts).
   */
  historyReplyBytesMax: 60 * 1024,
  /** `users` and `channels` pages (our extension: `limit`, `after`, `more`), by count and by encoded bytes. */
  listLimitDefault: 1_000,
  listLimitMax: 5_000,
  listReplyBytesMax: 60 * 1024,
  historyLimitDefault: 50,
  historyLimitMax: 500,
  /**
   * How far ahead of a server's Lamport clock a client's may be. Beyond, the
   * request is refused and the clock not adopted: one request must not move
   * every server's clock (the clock is the history's order, and replicated).
   * A server's clock passes a client's within one request of its own (every
   * reply carries it), so an honest client is never this far ahead.
   */
  clientClockAheadMax: 2 ** 20,
  /**
   * Election terms' epochs past this are refused: far beyond any real count
   * of elections, and 2^53 - 2^50 claims below the point where epoch + 1
   * would stop counting (a term of 2^53 - 1 once gave three coordinators).
   */
  termEpochMax: 2 ** 50,
  /** Ranks past this are refused (the reference hands out at most 64). */
  rankMax: 1_024,
  /**
   * A Berkeley correction larger than this is refused: clocks are kept within
   * milliseconds of each other, and one forged clockAdjust once moved a
   * coordinator's clock by a day.
   */
  clockAdjustMsMax: 600_000,
  /** Lamport clocks beyond this are refused: a hostile peer must not be able to push ours to overflow. */
  clockMax: Number.MAX_SAFE_INTEGER / 2,
} as const
