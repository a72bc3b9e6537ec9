import Mocha from 'mocha';

/**
 * The spec reporter, plus one plain closing line ("tests: N passed, N failed") that CI and humans
 * read the same way whatever the test runner.
 */
class SummaryReporter extends Mocha.reporters.Spec {
  constructor(runner: Mocha.Runner, options: Mocha.MochaOptions) {
    super(runner, options);
    runner.once(Mocha.Runner.constants.EVENT_RUN_END, () => {
      const stats = runner.stats;
      if (!stats) return;
      process.stdout.write(`tests: ${stats.passes} passed, ${stats.failures} failed\n`);
    });
  }
}

export = SummaryReporter;
