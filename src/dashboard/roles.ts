/** What `up` knows of a role's process, as the dashboard shows it. */
export interface RoleStatus {
  readonly name: string
  /** running; stopped (by a person: not restarted); frozen (SIGSTOP: silent, connections open); restarting (died, back-off). */
  readonly state: "starting" | "running" | "stopped" | "frozen" | "restarting"
  readonly pid: number | undefined
}

/** What the dashboard's buttons ask of whoever runs the roles (`up`). */
export type ControlAction = "stop" | "restart" | "partition" | "heal"
