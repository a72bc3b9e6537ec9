import { GapwatchError } from '../../platform/errors';

/** Errors of `gapwatch verify --gateway` (store-side journal verification). */
export class VerifyOptionError extends GapwatchError {
  readonly option: string;

  constructor(option: string, problem: string) {
    super('VERIFY_ERR_OPTION', `${option}: ${problem}; see \`gapwatch verify --help\``);
    this.option = option;
  }
}
