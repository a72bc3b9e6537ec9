import assert from 'node:assert/strict';
import { ResourceRouter } from '../../../gateway/http/resource-router';
import { DEFAULT_RULE, RoutePolicy, pathGlob } from '../../../gateway/http/route-policy';
import { parseConfig } from '../../../platform/config';

const identity = { login: 'claude-ci', subject: 'agent:claude-ci', claims: {} };

describe('gateway/http route policy and routing', () => {
  it('path globs: * stays in a segment, ** spans segments, case is ignored', () => {
    assert.ok(pathGlob('/repos/*/issues').test('/repos/acme/issues'));
    assert.ok(!pathGlob('/repos/*/issues').test('/repos/acme/x/issues'));
    assert.ok(pathGlob('/admin/**').test('/admin/a/b/c'));
    assert.ok(pathGlob('/admin/**').test('/ADMIN/x'));
    assert.ok(!pathGlob('/admin/**').test('/administrator'));
  });

  it('a review rule holds matching requests, with its reason; default review holds the rest', () => {
    const { gateway } = parseConfig(
      [
        'gateway:',
        '  http:',
        '    default: review',
        '    rules:',
        '      - { name: reads, methods: [GET], action: allow }',
        '      - { name: deploys, paths: ["/deploy/**"], action: review, reason: deploys need a human }',
      ].join('\n'),
    );
    const policy = new RoutePolicy(gateway.http);
    assert.deepEqual(policy.decide({ resource: 'gh', identity, method: 'POST', path: '/deploy/x' }), { action: 'review', rule: 'deploys', reason: 'deploys need a human' });
    assert.deepEqual(policy.decide({ resource: 'gh', identity, method: 'GET', path: '/deploy/x' }), { action: 'allow', rule: 'reads' });
    assert.equal(policy.decide({ resource: 'gh', identity, method: 'DELETE', path: '/x' }).action, 'review');
    assert.equal(policy.decide({ resource: 'gh', identity, method: 'DELETE', path: '/x' }).rule, DEFAULT_RULE);
  });

  it('first matching rule wins; the default decides the rest', () => {
    const { gateway } = parseConfig(
      [
        'gateway:',
        '  http:',
        '    default: deny',
        '    rules:',
        '      - { name: read-issues, methods: [get], paths: ["/repos/*/issues/**"], action: allow }',
        '      - { name: no-ci-writes, logins: ["claude-*"], methods: [POST, PUT], action: deny, reason: agents may not write }',
        '      - { name: other-resource, resources: [billing], action: allow }',
      ].join('\n'),
    );
    const policy = new RoutePolicy(gateway.http);
    assert.deepEqual(policy.decide({ resource: 'gh', identity, method: 'GET', path: '/repos/acme/issues/3' }), { action: 'allow', rule: 'read-issues' });
    assert.deepEqual(policy.decide({ resource: 'gh', identity, method: 'POST', path: '/repos/acme/issues/3' }), { action: 'deny', rule: 'no-ci-writes', reason: 'agents may not write' });
    assert.deepEqual(policy.decide({ resource: 'billing', identity, method: 'GET', path: '/x' }), { action: 'allow', rule: 'other-resource' });
    const fallback = policy.decide({ resource: 'gh', identity, method: 'GET', path: '/user' });
    assert.equal(fallback.action, 'deny');
    assert.equal(fallback.rule, DEFAULT_RULE);
  });

  it('routes by Host first, then by the longest whole-segment path prefix', () => {
    const { gateway } = parseConfig(
      [
        'gateway:',
        '  http:',
        '    resources:',
        '      - { name: gh, hosts: [api.github.local], upstream: { url: "http://127.0.0.1:1" } }',
        '      - { name: api, pathPrefix: /api/, upstream: { url: "http://127.0.0.1:2" } }',
        '      - { name: api-v2, pathPrefix: /api/v2, stripPrefix: false, upstream: { url: "http://127.0.0.1:3" } }',
      ].join('\n'),
    );
    const router = new ResourceRouter(gateway.http.resources);
    const byHost = router.route('API.GITHUB.local:8480', '/user');
    assert.equal(byHost.resource.name, 'gh');
    assert.equal(byHost.path, '/user');
    const api = router.route('gw:8480', '/api/things');
    assert.equal(api.resource.name, 'api');
    assert.equal(api.path, '/things');
    const v2 = router.route('gw', '/api/v2/things');
    assert.equal(v2.resource.name, 'api-v2');
    assert.equal(v2.path, '/api/v2/things');
    assert.throws(() => router.route('gw', '/apix'), { code: 'GW_ERR_HTTP_UNKNOWN_RESOURCE' });
  });

  it('refuses a resource that nothing can route to', () => {
    assert.throws(() => parseConfig('gateway:\n  http:\n    resources:\n      - { name: lost, upstream: { url: "http://127.0.0.1:1" } }\n'), /hosts, a pathPrefix, or both/);
  });
});
