export const runBench = async (_: ReadonlyArray<string>) => { console.log("todo") }
