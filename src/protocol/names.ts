import { Limits } from "./limits.ts"

/**
 * What a legal user or channel name is.
 *
 * Names are ZeroMQ topics (a channel's posts go out on topic = channel name, a
 * user's private messages on topic = user name), they are shown in terminals,
 * and they are keys on disk. So a name is:
 * - 1 to 32 Unicode code points, already in NFC form (we refuse rather than
 *   silently normalise, so the topic a client subscribes to is the topic we
 *   publish on);
 * - letters, digits and combining marks, plus `_`, `.` and `-` after the
 *   first character, which must be a letter or a digit (no `-flag`, no `..`
 *   paths, no spaces, no control, format or bidi-override characters);
 * - not one of the reserved topics (`servers`, `replication`), compared
 *   case-insensitively.
 * Names are case-sensitive otherwise: `Ana` and `ana` are two users, as they
 * are two ZeroMQ topics.
 */
const namePattern = /^[\p{L}\p{N}][\p{L}\p{N}\p{M}_.-]*$/u

export const reservedNames: ReadonlySet<string> = new Set(["servers", "replication"])

export const nameProblem = (name: string): string | undefined => {
  const codePoints = [...name].length
  if (codePoints === 0) return "must not be empty"
  if (codePoints > Limits.nameCodePointsMax) return `must be at most ${Limits.nameCodePointsMax} characters`
  if (name.normalize("NFC") !== name) return "must be in Unicode NFC form"
  if (!namePattern.test(name)) {
    return "may hold only letters, digits, '_', '.' and '-', and must start with a letter or digit"
  }
  if (reservedNames.has(name.toLowerCase())) return `'${name}' is reserved`
  return undefined
}

export const isValidName = (name: string): boolean => nameProblem(name) === undefined

/**
 * Message text: 1 to 4000 code points; no control characters but newline and
 * tab (a hostile post must not be able to drive other users' terminals with
 * escape sequences).
 */
// eslint-disable-next-line no-control-regex
const forbiddenInText = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/u

export const textProblem = (text: string): string | undefined => {
  const codePoints = [...text].length
  if (codePoints === 0) return "must not be empty"
  if (codePoints > Limits.messageCodePointsMax) return `must be at most ${Limits.messageCodePointsMax} characters`
  if (forbiddenInText.test(text)) return "must not contain control characters other than newline and tab"
  return undefined
}
