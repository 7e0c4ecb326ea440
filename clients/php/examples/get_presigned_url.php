<?php
/**
 * A presign endpoint shaped like Permanent's `POST /record/getPresignedUrl`, gated by the
 * upload gate sidecar, and the completion callback that ends the upload's lease.
 *
 *   POST /record/getPresignedUrl   Authorization: Bearer <token>
 *        {"RequestVO": {"data": [{"RecordVO": {"displayName": "interview.mp4", "size": 104857600}}]}}
 *        (a flat {"displayName": ..., "size": ...} works too)
 *     200 → a presigned POST (fake: no S3 here) and "uploadLeaseId"; RateLimit headers copied
 *     429 / 503 → the gate's Retry-After and RateLimit headers, an RFC 9457 problem+json body
 *   POST /record/registerRecord    {"uploadLeaseId": "...", "outcome": "completed"|"failed"|"timed_out"}
 *     the SDK calls it once the file is in S3: it releases the lease (a slot of the partner's
 *     concurrency and bytes in flight), whatever else the real endpoint does
 *
 * Try it by hand (the sidecar on its default socket, or UPLOAD_GATE_SOCKET=/path):
 *   php -S 127.0.0.1:8111 clients/php/examples/get_presigned_url.php
 *   curl -si -H 'Authorization: Bearer demo-theirstory-token' \
 *        -d '{"RequestVO":{"data":[{"RecordVO":{"displayName":"a.mp4","size":1048576}}]}}' \
 *        http://127.0.0.1:8111/record/getPresignedUrl
 *
 * Under PHP-FPM the same file works behind any front controller; only the routing at the
 * bottom is specific to this example.
 */

declare(strict_types=1);

require_once __DIR__ . '/../UploadGate.php';

// Stand-in for the API's OAuth lookup: access token → the partner's OAuth client id.
const DEMO_TOKENS = [
    'demo-theirstory-token' => 'theirstory',
    'demo-archive-token' => 'fas-importer',
];

/** @return never */
function respond_json(int $status, array $body, string $contentType = 'application/json'): void
{
    http_response_code($status);
    header("Content-Type: $contentType");
    echo json_encode($body, JSON_UNESCAPED_SLASHES), "\n";
    exit;
}

/** @return never */
function respond_problem(int $status, string $title, string $detail, array $extra = []): void
{
    respond_json(
        $status,
        ['type' => 'about:blank', 'title' => $title, 'status' => $status, 'detail' => $detail] + $extra,
        'application/problem+json',
    );
}

function request_body(): array
{
    $body = json_decode((string) file_get_contents('php://input'), true);
    if (!is_array($body)) {
        respond_problem(400, 'Bad Request', 'the body must be a JSON object');
    }
    return $body;
}

/** The authenticated partner's client id; a real API takes it from its OAuth token table. */
function client_id_of_request(): string
{
    $authorization = $_SERVER['HTTP_AUTHORIZATION'] ?? '';
    if (!preg_match('/^Bearer\s+(\S+)$/', $authorization, $match) || !isset(DEMO_TOKENS[$match[1]])) {
        respond_problem(401, 'Unauthorized', 'send a valid access token: Authorization: Bearer <token>');
    }
    return DEMO_TOKENS[$match[1]];
}

/** The RecordVO of Permanent's RequestVO envelope, or the body itself when it is flat. */
function record_of(array $body): array
{
    $record = $body['RequestVO']['data'][0]['RecordVO'] ?? $body;
    return is_array($record) ? $record : [];
}

function declared_size_bytes(array $record): int
{
    $size = $record['size'] ?? null;
    if (!is_int($size) || $size < 0) {
        respond_problem(400, 'Bad Request', 'size must be the file size in bytes, a whole number of 0 or more', [
            'field' => 'size',
        ]);
    }
    return $size;
}

function get_presigned_url(UploadGate $gate): void
{
    $clientId = client_id_of_request();
    $record = record_of(request_body());
    $sizeBytes = declared_size_bytes($record);
    $decision = $gate->admit($clientId, $sizeBytes);
    UploadGate::sendHeaders($decision);
    header('X-Upload-Gate-Source: ' . $decision['source']);
    if (!$decision['admitted']) {
        respond_json($decision['status'], UploadGate::problem($decision), 'application/problem+json');
    }
    $key = 'uploads/' . bin2hex(random_bytes(8)) . '/' . basename((string) ($record['displayName'] ?? 'file'));
    respond_json(200, [
        'isSuccessful' => true,
        'destinationUrl' => "https://permanent-uploads.example/$key",
        // Fake presigned POST: a real endpoint signs these fields with the S3 SDK.
        'presignedPost' => [
            'url' => 'https://permanent-uploads.example',
            'fields' => [
                'key' => $key,
                'Content-Type' => (string) ($record['type'] ?? 'application/octet-stream'),
                'x-amz-meta-upload-lease' => (string) ($decision['lease_id'] ?? ''),
                'Policy' => base64_encode(json_encode(['conditions' => [['content-length-range', 0, $sizeBytes]]])),
                'X-Amz-Signature' => 'fake-signature',
            ],
        ],
        // The SDK sends this back with registerRecord; null when the gate failed open.
        'uploadLeaseId' => $decision['lease_id'],
        'leaseExpiresInSeconds' => $decision['lease_expires_in_seconds'],
        'gateSource' => $decision['source'],
    ]);
}

function register_record(UploadGate $gate): void
{
    client_id_of_request();
    $body = request_body();
    $leaseId = $body['uploadLeaseId'] ?? null;
    $outcome = $body['outcome'] ?? 'completed';
    if (($leaseId !== null && !is_string($leaseId)) || !in_array($outcome, UploadGate::OUTCOMES, true)) {
        respond_problem(400, 'Bad Request', 'uploadLeaseId must be a string or null; outcome completed, failed or timed_out');
    }
    try {
        $release = $gate->release($leaseId, $outcome);
    } catch (UploadGateBadRequest $refused) {
        respond_problem(400, 'Bad Request', $refused->getMessage(), ['field' => 'uploadLeaseId']);
    }
    respond_json(200, ['isSuccessful' => true, 'leaseReleased' => $release['released'], 'gateSource' => $release['source']]);
}

$gate = UploadGate::shared();
$route = [$_SERVER['REQUEST_METHOD'] ?? 'GET', parse_url($_SERVER['REQUEST_URI'] ?? '/', PHP_URL_PATH)];
match ($route) {
    ['POST', '/record/getPresignedUrl'] => get_presigned_url($gate),
    ['POST', '/record/registerRecord'] => register_record($gate),
    default => respond_problem(404, 'Not Found', 'POST /record/getPresignedUrl or /record/registerRecord'),
};
