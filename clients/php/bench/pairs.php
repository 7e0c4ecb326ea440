<?php
/**
 * admit + release pairs through the PHP client, timed one by one; prints one JSON line.
 *
 *   php clients/php/bench/pairs.php SOCKET PAIRS kept-alive|new-connection
 *
 * kept-alive: one client for every pair (a CLI worker, or one FPM request's admit + release);
 * new-connection: a new client per pair, as every PHP-FPM request makes.
 */

declare(strict_types=1);

require_once __DIR__ . '/../UploadGate.php';

[, $socket, $pairs, $mode] = $argv + [null, null, '1000', 'kept-alive'];
$pairs = (int) $pairs;
$shared = new UploadGate(['socket_path' => $socket, 'timeout_ms' => 5000]);
$microseconds = [];
$notFromSidecar = 0;
for ($i = 0; $i < $pairs; $i++) {
    $started = hrtime(true);
    $gate = $mode === 'new-connection' ? new UploadGate(['socket_path' => $socket, 'timeout_ms' => 5000]) : $shared;
    $decision = $gate->admit('bench-php-' . ($i % 100), 1_048_576);
    $gate->release($decision['lease_id'], 'completed');
    if ($mode === 'new-connection') {
        $gate->close();
    }
    $microseconds[] = (hrtime(true) - $started) / 1000;
    $notFromSidecar += $decision['source'] === 'sidecar' && $decision['admitted'] ? 0 : 1;
}
echo json_encode(['microseconds' => $microseconds, 'not_admitted_by_sidecar' => $notFromSidecar]), "\n";
