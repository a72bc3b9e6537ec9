import { GapwatchError } from '../../platform/errors';

/**
 * The SSH gateway's error catalogue. An agent sees these as an SSH authentication failure, a
 * refused channel request, or a line on stderr with exit status 1; callers branch on `code`.
 */
export class SshGatewayError extends GapwatchError {}

/** The login name is not `identity@resource` and no configured mapping names it. */
export class SshLoginFormatError extends SshGatewayError {
  constructor(login: string) {
    super('GW_ERR_SSH_LOGIN', `login "${login}" selects no resource: log in as <identity>@<resource> (ssh -l claude@web1 gateway), or ask the operator for a gateway.ssh.logins mapping`);
  }
}

export class SshUnknownResourceError extends SshGatewayError {
  readonly resource: string;

  constructor(resource: string) {
    super('GW_ERR_SSH_UNKNOWN_RESOURCE', `the gateway has no SSH resource "${resource}"; ask the gateway operator for the list (gateway.ssh.resources)`);
    this.resource = resource;
  }
}

/** Wrong token, unregistered key, unknown, revoked or expired identity. */
export class SshAgentAuthError extends SshGatewayError {
  constructor(login: string, detail: string) {
    super('GW_ERR_SSH_AUTH', `authentication of "${login}" failed: ${detail}`);
  }
}

/** The upstream could not be reached or refused the resource's credential. */
export class SshUpstreamError extends SshGatewayError {
  readonly resource: string;

  constructor(resource: string, detail: string, cause?: unknown) {
    super('GW_ERR_SSH_UPSTREAM', `the gateway could not log into the upstream of resource "${resource}": ${detail}; the gateway operator should check gateway.ssh.resources[].upstream`, { cause });
    this.resource = resource;
  }
}

/** The upstream presented a host key other than the pinned ones: possibly a man in the middle. */
export class SshHostKeyMismatchError extends SshGatewayError {
  readonly resource: string;
  readonly presented: string;

  constructor(resource: string, presented: string) {
    super(
      'GW_ERR_SSH_HOST_KEY_MISMATCH',
      `the upstream of resource "${resource}" presented host key ${presented}, which is not pinned in gateway.ssh.resources[].upstream.hostKeys; the connection was refused. If the server's key was rotated on purpose, pin the new key`,
    );
    this.resource = resource;
    this.presented = presented;
  }
}

/** The gateway's own host key file is unusable. */
export class SshHostKeyFileError extends SshGatewayError {
  constructor(file: string, detail: string, cause?: unknown) {
    super('GW_ERR_SSH_HOST_KEY_FILE', `the SSH gateway host key ${file} is unusable: ${detail}; fix its permissions (0600, owned by the gateway user) or remove it to have a new one created`, { cause });
  }
}

/** An identity's SSH public key could not be registered. */
export class SshKeyInputError extends SshGatewayError {
  constructor(detail: string) {
    super('GW_ERR_SSH_KEY_INPUT', `the SSH public key is not usable: ${detail}; give an OpenSSH public key file such as ~/.ssh/id_ed25519.pub`);
  }
}

/** Policy refused an exec command or a forwarding request. */
export class SshPolicyDeniedError extends SshGatewayError {
  readonly rule: string;

  constructor(rule: string, reason: string) {
    super('GW_ERR_POLICY_DENIED', `gapwatch: refused by policy rule ${rule}: ${reason}`);
    this.rule = rule;
  }
}
