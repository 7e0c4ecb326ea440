<?php
/**
 * The upload gate sidecar's PHP client: admit, release and renew uploads through
 * `upload-gate serve` on this host (docs/upload-gate.md, "Clients").
 *
 * One file, PHP 8.1+ with the curl extension, nothing else. Copy it next to the presign
 * endpoint and `require` it.
 *
 *     $gate = UploadGate::shared();                       // Unix socket /run/upload-gate/gate.sock
 *     $decision = $gate->admit($clientId, $sizeBytes);
 *     if (!$decision['admitted']) {
 *         UploadGate::sendHeaders($decision);             // RateLimit-Policy, RateLimit, Retry-After
 *         http_response_code($decision['status']);        // 429 or 503
 *         header('Content-Type: application/problem+json');
 *         echo json_encode(UploadGate::problem($decision));
 *         exit;
 *     }
 *     // ... presign; keep $decision['lease_id'] for the completion callback:
 *     $gate->release($leaseId, 'completed');
 *
 * Every answer is the sidecar's decision plus `source`: "sidecar" when the sidecar decided,
 * "fail-open" or "fail-closed" when it could not be reached (connect refused, socket missing,
 * timeout, a 5xx or an answer that is not the protocol's JSON). Failing open is the default:
 * the upload is admitted without a lease, counted (UploadGate::failureCounts()) and logged
 * through error_log(). Failing closed answers 503 with Retry-After from the options.
 */

declare(strict_types=1);

/** The sidecar refused what we sent (HTTP 400): a bug in the caller, never the sidecar being away. */
final class UploadGateBadRequest extends InvalidArgumentException
{
    public function __construct(string $message, public readonly ?string $field = null)
    {
        parent::__construct($message);
    }
}

final class UploadGate
{
    public const SOURCE_SIDECAR = 'sidecar';
    public const SOURCE_FAIL_OPEN = 'fail-open';
    public const SOURCE_FAIL_CLOSED = 'fail-closed';
    public const OUTCOMES = ['completed', 'failed', 'timed_out'];
    // The same words as the Python thin client (upload_gate/client.py) for a fail-closed 503.
    public const UNAVAILABLE_REASON = 'upload admission is unavailable; try again later';

    private const DEFAULTS = [
        // Where the sidecar listens: a Unix socket path, or a 127.0.0.1 port when socket_path is null.
        'socket_path' => '/run/upload-gate/gate.sock',
        'port' => null,
        'host' => '127.0.0.1',
        // The whole call, connect included. An admit on the socket takes well under a
        // millisecond; a sidecar that has not answered in this time is treated as away.
        'timeout_ms' => 250,
        'connect_timeout_ms' => 100,
        // "open": admit without a lease when the sidecar is away; "closed": answer 503.
        'fail_mode' => 'open',
        'fail_closed_retry_after_seconds' => 5,
        // Receives one line per failure; default error_log(). Tests pass a closure.
        'log' => null,
    ];

    /** @var array<string, int> fail-open / fail-closed answers given by this process */
    private static array $failures = [self::SOURCE_FAIL_OPEN => 0, self::SOURCE_FAIL_CLOSED => 0];
    private static ?UploadGate $shared = null;

    private array $options;
    private int $requests = 0;
    private int $connectionsOpened = 0;
    /** @var CurlHandle|null one handle per client: curl keeps the connection alive between calls */
    private $curl = null;

    public function __construct(array $options = [])
    {
        $unknown = array_diff(array_keys($options), array_keys(self::DEFAULTS));
        if ($unknown) {
            throw new InvalidArgumentException('unknown UploadGate option(s): ' . implode(', ', $unknown));
        }
        $this->options = array_replace(self::DEFAULTS, $options);
        if (!in_array($this->options['fail_mode'], ['open', 'closed'], true)) {
            throw new InvalidArgumentException("fail_mode must be 'open' or 'closed'");
        }
        if ($this->options['port'] !== null) {
            $this->options['socket_path'] = null;
        }
    }

    /**
     * One client per process, configured from the environment the first time:
     * UPLOAD_GATE_SOCKET, UPLOAD_GATE_PORT, UPLOAD_GATE_TIMEOUT_MS, UPLOAD_GATE_FAIL_MODE,
     * UPLOAD_GATE_FAIL_CLOSED_RETRY_AFTER_SECONDS. Reusing it reuses its connection.
     */
    public static function shared(): self
    {
        return self::$shared ??= new self(self::optionsFromEnvironment());
    }

    public static function optionsFromEnvironment(): array
    {
        $options = [];
        $names = [
            'UPLOAD_GATE_SOCKET' => 'socket_path',
            'UPLOAD_GATE_PORT' => 'port',
            'UPLOAD_GATE_TIMEOUT_MS' => 'timeout_ms',
            'UPLOAD_GATE_FAIL_MODE' => 'fail_mode',
            'UPLOAD_GATE_FAIL_CLOSED_RETRY_AFTER_SECONDS' => 'fail_closed_retry_after_seconds',
        ];
        foreach ($names as $variable => $option) {
            $value = getenv($variable);
            if ($value === false || $value === '') {
                continue;
            }
            $numeric = in_array($option, ['port', 'timeout_ms', 'fail_closed_retry_after_seconds'], true);
            if ($numeric && !ctype_digit($value)) {
                throw new InvalidArgumentException("$variable must be a whole number, not '$value'");
            }
            $options[$option] = $numeric ? (int) $value : $value;
        }
        return $options;
    }

    /**
     * Ask whether an upload of $sizeBytes by $clientId may start.
     *
     * @return array{admitted: bool, status: int, reason: string, limit: ?string,
     *   retry_after_seconds: ?int, lease_id: ?string, lease_expires_in_seconds: ?int,
     *   headers: array<string, string>, problem: ?array, source: string}
     */
    public function admit(string $clientId, int $sizeBytes): array
    {
        if ($clientId === '') {
            throw new UploadGateBadRequest('client_id must not be empty', 'client_id');
        }
        if ($sizeBytes < 0) {
            throw new UploadGateBadRequest('size_bytes must be 0 or more', 'size_bytes');
        }
        $answer = $this->post('/v1/admit', ['client_id' => $clientId, 'size_bytes' => $sizeBytes]);
        if (is_string($answer) || !isset($answer['admitted'], $answer['status'])) {
            return $this->unreachableDecision(is_string($answer) ? $answer : 'admit answer without a decision');
        }
        return $answer + ['source' => self::SOURCE_SIDECAR];
    }

    /**
     * End an upload's lease. A null lease (fail-open, or nothing admitted) is a no-op.
     *
     * @return array{released: bool, source: ?string} source null: no lease, nothing asked
     */
    public function release(?string $leaseId, string $outcome = 'completed'): array
    {
        if (!in_array($outcome, self::OUTCOMES, true)) {
            throw new UploadGateBadRequest('outcome must be completed, failed or timed_out', 'outcome');
        }
        if ($leaseId === null || $leaseId === '') {
            return ['released' => false, 'source' => null];  // nothing was asked
        }
        $answer = $this->post('/v1/release', ['lease_id' => $leaseId, 'outcome' => $outcome]);
        if (is_string($answer) || !array_key_exists('released', $answer)) {
            // The lease is not lost: the sidecar expires it after its lease timeout.
            $this->log("release of lease $leaseId failed: " . (is_string($answer) ? $answer : 'no released field'));
            return ['released' => false, 'source' => $this->unreachableSource()];
        }
        return $answer + ['source' => self::SOURCE_SIDECAR];
    }

    /**
     * Keep a long upload's lease. A null lease is a no-op.
     *
     * @return array{renewed: bool, expires_in_seconds: ?int, source: ?string}
     */
    public function renew(?string $leaseId): array
    {
        if ($leaseId === null || $leaseId === '') {
            return ['renewed' => false, 'expires_in_seconds' => null, 'source' => null];
        }
        $answer = $this->post('/v1/renew', ['lease_id' => $leaseId]);
        if (is_string($answer) || !array_key_exists('renewed', $answer)) {
            $this->log("renew of lease $leaseId failed: " . (is_string($answer) ? $answer : 'no renewed field'));
            return ['renewed' => false, 'expires_in_seconds' => null, 'source' => $this->unreachableSource()];
        }
        return $answer + ['source' => self::SOURCE_SIDECAR];
    }

    /** "Name: value" lines of the headers to copy into the response (RateLimit-Policy, RateLimit, Retry-After). */
    public static function headerLines(array $decision): array
    {
        $lines = [];
        foreach ($decision['headers'] ?? [] as $name => $value) {
            // The sidecar builds these; refusing line breaks keeps a bad value from splitting the response.
            if (is_string($name) && is_scalar($value) && !preg_match('/[\r\n]/', $name . $value)) {
                $lines[] = "$name: $value";
            }
        }
        return $lines;
    }

    /** Copy the decision's headers into this PHP response with header(). */
    public static function sendHeaders(array $decision): void
    {
        foreach (self::headerLines($decision) as $line) {
            header($line);
        }
    }

    /**
     * The RFC 9457 problem body for a rejected decision: the sidecar's problem members when it
     * gave some (reduced capacity), else about:blank with the reason as detail.
     */
    public static function problem(array $decision): array
    {
        $status = (int) ($decision['status'] ?? 503);
        $body = [
            'type' => 'about:blank',
            'title' => $status === 429 ? 'Too Many Requests' : 'Service Unavailable',
            'status' => $status,
            'detail' => (string) ($decision['reason'] ?? ''),
        ];
        $body = array_replace($body, is_array($decision['problem'] ?? null) ? $decision['problem'] : []);
        $body['status'] = $status;
        $body['limit'] = $decision['limit'] ?? null;
        $body['retry_after_seconds'] = $decision['retry_after_seconds'] ?? null;
        $body['source'] = $decision['source'] ?? null;
        return $body;
    }

    /** @return array<string, int> fail-open and fail-closed answers given in this process */
    public static function failureCounts(): array
    {
        return self::$failures;
    }

    /** Where this client sends its calls: unix:PATH or http://HOST:PORT. */
    public function address(): string
    {
        return $this->options['socket_path'] !== null
            ? 'unix:' . $this->options['socket_path']
            : 'http://' . $this->options['host'] . ':' . (int) $this->options['port'];
    }

    /** @return array{requests: int, connections_opened: int} calls made, and connections they opened (keep-alive: 1) */
    public function stats(): array
    {
        return ['requests' => $this->requests, 'connections_opened' => $this->connectionsOpened];
    }

    public function close(): void
    {
        if ($this->curl !== null) {
            curl_close($this->curl);
            $this->curl = null;
        }
    }

    /** The decoded JSON answer of a 200, or a string saying why there is none. */
    private function post(string $path, array $body): array|string
    {
        $curl = $this->handle();
        $base = $this->options['socket_path'] !== null
            ? 'http://localhost'
            : 'http://' . $this->options['host'] . ':' . (int) $this->options['port'];
        try {
            $json = json_encode($body, JSON_THROW_ON_ERROR);
        } catch (JsonException $notUtf8) {
            throw new UploadGateBadRequest('client_id and lease_id must be UTF-8 text: ' . $notUtf8->getMessage());
        }
        curl_setopt_array($curl, [CURLOPT_URL => $base . $path, CURLOPT_POSTFIELDS => $json]);
        $raw = curl_exec($curl);
        $this->requests++;
        $this->connectionsOpened += (int) curl_getinfo($curl, CURLINFO_NUM_CONNECTS);
        if ($raw === false) {
            return 'sidecar unreachable at ' . $this->address() . ': ' . curl_error($curl);
        }
        $status = (int) curl_getinfo($curl, CURLINFO_RESPONSE_CODE);
        $answer = json_decode((string) $raw, true);
        if ($status === 400) {
            throw new UploadGateBadRequest(
                is_array($answer) ? (string) ($answer['error'] ?? 'bad request') : 'bad request',
                is_array($answer) ? ($answer['field'] ?? null) : null,
            );
        }
        if ($status !== 200) {
            return "sidecar answered HTTP $status on $path";
        }
        if (!is_array($answer)) {
            return "sidecar answered something other than a JSON object on $path";
        }
        return $answer;
    }

    private function handle(): CurlHandle
    {
        if ($this->curl !== null) {
            return $this->curl;
        }
        $curl = curl_init();
        $options = [
            CURLOPT_POST => true,
            CURLOPT_RETURNTRANSFER => true,
            CURLOPT_HTTPHEADER => ['Content-Type: application/json', 'Accept: application/json', 'Expect:'],
            CURLOPT_TIMEOUT_MS => (int) $this->options['timeout_ms'],
            CURLOPT_CONNECTTIMEOUT_MS => (int) $this->options['connect_timeout_ms'],
            // Timeouts below one second need this where curl resolves names with signals.
            CURLOPT_NOSIGNAL => true,
            CURLOPT_HTTP_VERSION => CURL_HTTP_VERSION_1_1,
            CURLOPT_TCP_NODELAY => true,
        ];
        if ($this->options['socket_path'] !== null) {
            $options[CURLOPT_UNIX_SOCKET_PATH] = $this->options['socket_path'];
        }
        curl_setopt_array($curl, $options);
        return $this->curl = $curl;
    }

    private function unreachableSource(): string
    {
        return $this->options['fail_mode'] === 'closed' ? self::SOURCE_FAIL_CLOSED : self::SOURCE_FAIL_OPEN;
    }

    private function unreachableDecision(string $why): array
    {
        $source = $this->unreachableSource();
        self::$failures[$source]++;
        $this->log("admit answered $source ($why)");
        $decision = [
            'admitted' => true,
            'status' => 200,
            'reason' => '',
            'limit' => null,
            'retry_after_seconds' => null,
            'lease_id' => null,
            'lease_expires_in_seconds' => null,
            'headers' => [],
            'problem' => null,
            'source' => $source,
            'error' => $why,
        ];
        if ($source === self::SOURCE_FAIL_CLOSED) {
            $retryAfter = (int) $this->options['fail_closed_retry_after_seconds'];
            $decision = array_replace($decision, [
                'admitted' => false,
                'status' => 503,
                'reason' => self::UNAVAILABLE_REASON,
                'retry_after_seconds' => $retryAfter,
                'headers' => ['Retry-After' => (string) $retryAfter],
                'problem' => [
                    'type' => 'about:blank',
                    'title' => 'Service Unavailable',
                    'status' => 503,
                    'detail' => self::UNAVAILABLE_REASON,
                ],
            ]);
        }
        return $decision;
    }

    private function log(string $line): void
    {
        $line = 'upload-gate: ' . $line;
        if ($this->options['log'] !== null) {
            ($this->options['log'])($line);
        } else {
            error_log($line);
        }
    }
}
