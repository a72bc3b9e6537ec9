import { GapwatchError } from '../../platform/errors';

/** The policy layer's error catalogue (reviews and their channel): callers branch on `code`. */
export class ReviewNotFoundError extends GapwatchError {
  readonly reviewId: string;

  constructor(reviewId: string) {
    super('POLICY_ERR_REVIEW_NOT_FOUND', `no review ${reviewId}; \`gapwatch reviews\` lists the pending ones`);
    this.reviewId = reviewId;
  }
}

export class ReviewAlreadyDecidedError extends GapwatchError {
  readonly reviewId: string;
  readonly outcome: string;

  constructor(reviewId: string, outcome: string, by: string | null) {
    super('POLICY_ERR_REVIEW_DECIDED', `review ${reviewId} is already settled: ${outcome}${by ? ` by ${by}` : ''}; nothing was changed`);
    this.reviewId = reviewId;
    this.outcome = outcome;
  }
}

export class SelfApprovalError extends GapwatchError {
  readonly reviewId: string;
  readonly reviewer: string;

  constructor(reviewId: string, reviewer: string) {
    super(
      'POLICY_ERR_SELF_APPROVAL',
      `${reviewer} asked for review ${reviewId} and cannot decide it; another person must run \`gapwatch approve|deny ${reviewId} --as <their name>\``,
    );
    this.reviewId = reviewId;
    this.reviewer = reviewer;
  }
}

export class ReviewerNotAllowedError extends GapwatchError {
  readonly reviewer: string;

  constructor(reviewer: string) {
    super('POLICY_ERR_REVIEWER_NOT_ALLOWED', `${reviewer} is not among gateway.policy.reviewers; ask one of them, or add the name to the configuration`);
    this.reviewer = reviewer;
  }
}

export class ReviewInputError extends GapwatchError {
  constructor(message: string) {
    super('POLICY_ERR_INVALID_INPUT', message);
  }
}

export class ReviewChannelError extends GapwatchError {
  readonly path: string;

  constructor(path: string, detail: string, cause?: unknown) {
    super('POLICY_ERR_REVIEW_CHANNEL', `review directory ${path}: ${detail}`, { cause });
    this.path = path;
  }
}
