<?php
/**
 * The PHP client against a real sidecar (tests/clients/test_php_client.py starts it).
 *
 *   UPLOAD_GATE_SOCKET=/tmp/gate-x/gate.sock UPLOAD_GATE_SIDECAR=running php clients/php/tests/sidecar_test.php
 *
 * UPLOAD_GATE_SIDECAR=running: the sidecar serves `*` with 2 uploads at once and a paused client
 * (UPLOAD_GATE_PAUSED_CLIENT, UPLOAD_GATE_PAUSE_REASON); =stopped: it was stopped, nothing answers
 * on the socket. Without UPLOAD_GATE_SOCKET only the cases that need no sidecar run.
 * Prints one line per case; exits 1 if any check failed.
 */

declare(strict_types=1);

require_once __DIR__ . '/../UploadGate.php';

$failures = 0;
$current = '';

function check(bool $ok, string $what, mixed $seen = null): void
{
    global $failures, $current;
    if (!$ok) {
        $failures++;
        echo "FAIL [$current] $what" . ($seen === null ? '' : ': ' . json_encode($seen, JSON_UNESCAPED_SLASHES)) . "\n";
    }
}

function test_case(string $name, callable $body): void
{
    global $current, $failures;
    $current = $name;
    $before = $failures;
    try {
        $body();
    } catch (Throwable $error) {
        $failures++;
        echo "FAIL [$name] threw " . get_class($error) . ': ' . $error->getMessage() . "\n";
    }
    echo ($failures === $before ? 'ok   ' : 'FAILED ') . "$name\n";
}

function fresh_client_id(): string
{
    return 'php-test-' . bin2hex(random_bytes(4));
}

/** A client that writes its log lines into $lines instead of error_log(). */
function gate(array $options, array &$lines = []): UploadGate
{
    return new UploadGate($options + [
        // Generous: the test machine may be busy; the mute-socket case below covers timing out.
        'timeout_ms' => 5000,
        'socket_path' => getenv('UPLOAD_GATE_SOCKET') ?: '/nonexistent/gate.sock',
        'log' => function (string $line) use (&$lines): void {
            $lines[] = $line;
        },
    ]);
}

function header_names(array $decision): array
{
    return array_map(fn (string $line) => strstr($line, ':', true), UploadGate::headerLines($decision));
}

$state = getenv('UPLOAD_GATE_SIDECAR') ?: '';

if ($state === 'running') {
    test_case('an admitted upload gets a lease and the RateLimit headers', function (): void {
        $gate = gate([]);
        $decision = $gate->admit(fresh_client_id(), 1_048_576);
        check($decision['admitted'] === true && $decision['status'] === 200, 'admitted with 200', $decision);
        check($decision['source'] === 'sidecar', 'source sidecar', $decision['source']);
        check(is_string($decision['lease_id']) && $decision['lease_id'] !== '', 'a lease id', $decision['lease_id']);
        check(is_int($decision['lease_expires_in_seconds']) && $decision['lease_expires_in_seconds'] > 0, 'lease expiry');
        check(header_names($decision) === ['RateLimit-Policy', 'RateLimit'], 'RateLimit headers to copy', header_names($decision));
        check(str_contains($decision['headers']['RateLimit'], '"inflight";r=1'), 'one slot left', $decision['headers']);
    });

    test_case('the third upload beyond concurrency 2 is a 429 with Retry-After and RateLimit', function (): void {
        $gate = gate([]);
        $client = fresh_client_id();
        $first = $gate->admit($client, 10);
        $second = $gate->admit($client, 10);
        $third = $gate->admit($client, 10);
        check($first['admitted'] && $second['admitted'], 'the first two admitted');
        check($third['admitted'] === false && $third['status'] === 429, '429', $third);
        check($third['limit'] === 'max_concurrent_uploads' && $third['lease_id'] === null, 'over concurrency, no lease', $third);
        check($third['source'] === 'sidecar', 'source sidecar');
        $lines = UploadGate::headerLines($third);
        check(in_array('Retry-After: ' . $third['retry_after_seconds'], $lines, true), 'Retry-After line', $lines);
        check((int) $third['retry_after_seconds'] >= 1, 'Retry-After at least 1 s', $third['retry_after_seconds']);
        check(count(preg_grep('/^RateLimit-Policy: .*"inflight";q=2/', $lines)) === 1, 'RateLimit-Policy line', $lines);
        check(count(preg_grep('/^RateLimit: .*"inflight";r=0/', $lines)) === 1, 'RateLimit line', $lines);
        $problem = UploadGate::problem($third);
        check($problem['status'] === 429 && $problem['title'] === 'Too Many Requests', 'RFC 9457 problem', $problem);
        check($problem['detail'] !== '' && $problem['retry_after_seconds'] === $third['retry_after_seconds'], 'detail, retry');
    });

    test_case('releasing a lease frees its slot, once', function (): void {
        $gate = gate([]);
        $client = fresh_client_id();
        $first = $gate->admit($client, 10);
        $gate->admit($client, 10);
        check($gate->admit($client, 10)['status'] === 429, 'full before the release');
        $release = $gate->release($first['lease_id'], 'completed');
        check($release === ['released' => true, 'source' => 'sidecar'], 'released', $release);
        $again = $gate->admit($client, 10);
        check($again['admitted'] === true && is_string($again['lease_id']), 'a slot again', $again);
        check($gate->release($first['lease_id'], 'completed')['released'] === false, 'a second release is false');
    });

    test_case('a long upload renews its lease', function (): void {
        $gate = gate([]);
        $decision = $gate->admit(fresh_client_id(), 10);
        $renew = $gate->renew($decision['lease_id']);
        check($renew['renewed'] === true && is_int($renew['expires_in_seconds']), 'renewed', $renew);
        check($renew['source'] === 'sidecar', 'source sidecar');
        $gate->release($decision['lease_id'], 'failed');
        check($gate->renew($decision['lease_id'])['renewed'] === false, 'an ended lease does not renew');
    });

    test_case('a paused client gets 503 with the pause reason and Retry-After', function (): void {
        $gate = gate([]);
        $decision = $gate->admit((string) getenv('UPLOAD_GATE_PAUSED_CLIENT'), 10);
        check($decision['admitted'] === false && $decision['status'] === 503, '503', $decision);
        check($decision['reason'] === getenv('UPLOAD_GATE_PAUSE_REASON'), 'the pause reason', $decision['reason']);
        check($decision['source'] === 'sidecar' && $decision['lease_id'] === null, 'sidecar, no lease');
        check(in_array('Retry-After: ' . $decision['retry_after_seconds'], UploadGate::headerLines($decision), true), 'Retry-After');
        $problem = UploadGate::problem($decision);
        check($problem['status'] === 503 && $problem['detail'] === $decision['reason'], 'problem body', $problem);
    });

    test_case('over a limit lowered for the loaded fleet: 503 with the reduced-capacity problem', function (): void {
        $gate = gate([]);
        $client = (string) getenv('UPLOAD_GATE_REDUCED_CLIENT');
        $first = $gate->admit($client, 10);
        $second = $gate->admit($client, 10);
        $gate->release($first['lease_id'], 'completed');
        check($second['status'] === 503 && $second['source'] === 'sidecar', '503 from the sidecar', $second);
        $problem = UploadGate::problem($second);
        check(str_ends_with((string) $problem['type'], '#temporary-reduced-capacity'), 'the problem type', $problem);
        check($problem['status'] === 503 && $problem['violated-policies'] === ['inflight'], 'status, policies', $problem);
        check(count(preg_grep('/^RateLimit: .*"inflight";r=0/', UploadGate::headerLines($second))) === 1, 'RateLimit');
    });

    test_case('calls reuse one kept-alive connection', function (): void {
        $gate = gate([]);
        $client = fresh_client_id();
        for ($i = 0; $i < 5; $i++) {
            $decision = $gate->admit($client, 1);
            $gate->release($decision['lease_id'], 'completed');
        }
        check($gate->stats() === ['requests' => 10, 'connections_opened' => 1], 'ten calls, one connection', $gate->stats());
    });

    test_case('bad input is refused, not failed open', function (): void {
        $gate = gate([]);
        try {
            $gate->admit(fresh_client_id(), -1);
            check(false, 'a negative size throws');
        } catch (UploadGateBadRequest $refused) {
            check($refused->field === 'size_bytes', 'field size_bytes', $refused->field);
        }
        try {
            $gate->release('not-a-lease', 'completed');
            check(false, 'the sidecar refuses a malformed lease id');
        } catch (UploadGateBadRequest $refused) {
            check($refused->field === 'lease_id', 'the sidecar names lease_id', $refused->getMessage());
        }
        check(UploadGate::failureCounts()['fail-open'] === 0, 'nothing counted as failing open');
    });
}

if ($state === 'stopped') {
    test_case('with the sidecar stopped the client fails open by default, counted and logged', function (): void {
        $lines = [];
        $gate = gate([], $lines);
        $before = UploadGate::failureCounts()['fail-open'];
        $decision = $gate->admit(fresh_client_id(), 10);
        check($decision['admitted'] === true && $decision['status'] === 200, 'admitted', $decision);
        check($decision['source'] === 'fail-open' && $decision['lease_id'] === null, 'fail-open, no lease', $decision);
        check(UploadGate::headerLines($decision) === [], 'no headers to copy');
        check(UploadGate::failureCounts()['fail-open'] === $before + 1, 'counted', UploadGate::failureCounts());
        check(count($lines) === 1 && str_contains($lines[0], 'fail-open'), 'logged once', $lines);
        check(str_contains($decision['error'], 'unix:' . getenv('UPLOAD_GATE_SOCKET')), 'says where it looked', $decision['error']);
        $release = $gate->release($decision['lease_id'], 'completed');
        check($release === ['released' => false, 'source' => null] && count($lines) === 1, 'releasing no lease is a no-op', $release);
    });

    test_case('with the sidecar stopped a fail-closed client answers 503 with its Retry-After', function (): void {
        $lines = [];
        $gate = gate(['fail_mode' => 'closed', 'fail_closed_retry_after_seconds' => 7], $lines);
        $decision = $gate->admit(fresh_client_id(), 10);
        check($decision['admitted'] === false && $decision['status'] === 503, '503', $decision);
        check($decision['source'] === 'fail-closed', 'fail-closed', $decision['source']);
        check(UploadGate::headerLines($decision) === ['Retry-After: 7'], 'Retry-After from the options', UploadGate::headerLines($decision));
        check(UploadGate::problem($decision)['status'] === 503, 'a 503 problem body');
        check($decision['reason'] === UploadGate::UNAVAILABLE_REASON, 'the reason the Python client gives', $decision['reason']);
        check(UploadGate::failureCounts()['fail-closed'] >= 1 && count($lines) === 1, 'counted and logged', $lines);
    });

    test_case('the fail mode comes from the environment for the shared client', function (): void {
        putenv('UPLOAD_GATE_FAIL_MODE=closed');
        $decision = UploadGate::shared()->admit(fresh_client_id(), 10);
        check($decision['source'] === 'fail-closed' && $decision['status'] === 503, 'UPLOAD_GATE_FAIL_MODE=closed', $decision);
    });
}

// Needs no sidecar: a socket that accepts and never answers.
test_case('a sidecar that does not answer in time counts as away', function (): void {
    $path = sys_get_temp_dir() . '/gate-mute-' . bin2hex(random_bytes(4)) . '.sock';
    $mute = stream_socket_server("unix://$path");
    $lines = [];
    $gate = gate(['socket_path' => $path, 'timeout_ms' => 150], $lines);
    // Without the timeout this would wait for ever (the test runner's own timeout catches that).
    $decision = $gate->admit(fresh_client_id(), 10);
    check($decision['source'] === 'fail-open' && $decision['admitted'] === true, 'fail-open', $decision);
    check(str_contains($decision['error'], 'unreachable'), 'why', $decision['error']);
    fclose($mute);
    unlink($path);
});

test_case('a client id that is not UTF-8 is refused, not failed open', function (): void {
    $gate = gate(['socket_path' => '/nonexistent/gate.sock']);
    try {
        $gate->admit("partner-\xff", 1);
        check(false, 'throws');
    } catch (UploadGateBadRequest $refused) {
        check(str_contains($refused->getMessage(), 'UTF-8'), 'says why', $refused->getMessage());
    }
    check($gate->stats()['requests'] === 0, 'nothing was sent', $gate->stats());
});

test_case('options are checked when the client is made', function (): void {
    foreach ([['fail_mode' => 'sometimes'], ['socket' => '/x']] as $options) {
        try {
            new UploadGate($options);
            check(false, 'refused: ' . json_encode($options));
        } catch (InvalidArgumentException) {
        }
    }
});

echo $failures === 0 ? "all passed\n" : "$failures check(s) failed\n";
exit($failures === 0 ? 0 : 1);
