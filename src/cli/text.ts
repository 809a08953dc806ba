/**
 * Text from the network, made safe to print (the client and `bulletin sub`):
 * what a hostile server or poster sends must not drive our terminal.
 */

/** Control characters (newline and tab kept) and bidi overrides become U+FFFD. */
// eslint-disable-next-line no-control-regex
export const safe = (s: unknown) => String(s).replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g, "\uFFFD")

/** A message on one screen line: its newlines shown as ⏎ (a newline in a post must not print what looks like another post). */
export const oneLine = (s: unknown) => safe(s).replace(/\n/g, "\u23ce").replace(/\t/g, " ")

/** A timestamp as HH:MM:SS, or --:--:-- when there is none. */
export const time = (ms: number | undefined): string => (ms === undefined || !Number.isFinite(ms) ? "--:--:--" : new Date(ms).toLocaleTimeString("en-GB", { hour12: false }))
