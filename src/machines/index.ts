/**
 * `bulletin/machines`: the coordination protocols as pure XState v5 machines
 * and pure helpers, for hosts of your own (a simulator, another transport).
 * Documented in docs/machines.md; examples/drive-bully.ts drives one.
 */
export { type HeartbeatContext, type HeartbeatEmitted, type HeartbeatEvent, type HeartbeatInput, heartbeatDefaults, heartbeatMachine } from "./heartbeat.ts"
export { type BullyContext, type BullyEmitted, type BullyEvent, type BullyInput, type Coordinator, type Peer, bullyDefaults, bullyMachine } from "./bully.ts"
export {
  type Adjustment,
  type BerkeleyContext,
  type BerkeleyEmitted,
  type BerkeleyEvent,
  type BerkeleyInput,
  type ClockSample,
  berkeleyAdjustments,
  berkeleyDefaults,
  berkeleyMachine,
} from "./berkeley.ts"
export { SlewingClock, type SlewingClockOptions, defaultSlewing } from "./slewingClock.ts"
export { LamportClock } from "./lamport.ts"
export { type Term, compareTerms, termZero } from "./term.ts"
export {
  type ReplicationContext,
  type ReplicationEmitted,
  type ReplicationEvent,
  type ReplicationInput,
  replicationDefaults,
  replicationMachine,
} from "./replication.ts"
