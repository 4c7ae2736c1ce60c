// The `hoard` command line: the program (program.ts) run on this process's
// arguments. Each command maps errors to exit codes through output.ts.

import { buildProgram } from './program.ts';

await buildProgram().parseAsync(process.argv);
