package dev.sfmobile.app

import android.content.Intent
import android.os.Bundle
import android.util.Log
import android.view.WindowManager
import androidx.activity.ComponentActivity
import androidx.activity.compose.setContent
import androidx.compose.foundation.layout.fillMaxSize
import androidx.compose.foundation.layout.padding
import androidx.compose.material3.MaterialTheme
import androidx.compose.material3.Text
import androidx.compose.runtime.getValue
import androidx.compose.runtime.mutableStateOf
import androidx.compose.runtime.setValue
import androidx.compose.ui.Modifier
import androidx.compose.ui.unit.dp
import androidx.lifecycle.lifecycleScope
import dev.sfmobile.app.bench.AndroidBenchmarkPlatform
import dev.sfmobile.app.bundles.BundleStore
import dev.sfmobile.app.generation.GenerationRepository
import dev.sfmobile.core.InputException
import dev.sfmobile.core.bench.BenchmarkArgs
import dev.sfmobile.core.bench.BenchmarkSession
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext
import java.io.File
import java.io.IOException

/**
 * The benchmark mode, started over adb (README.md, "Benchmark mode"):
 * `adb shell am start -S -W -n dev.sfmobile.sample/dev.sfmobile.app.BenchmarkActivity
 * --es bundle NAME --es backend ort-qnn --ei runs 5 --ei warmup 1 --ei steps 8 --es prompt "..."
 * --el seed 0 --es session_id ID` (adb_bench.py adds its cooldown extras). Runs one
 * [BenchmarkSession], writes `files/benchmarks/<session_id>.json` and finishes. Bad extras write
 * `files/benchmarks/<session_id>.error` (one line) instead, because a report must name a valid backend.
 */
class BenchmarkActivity : ComponentActivity() {
    private var status by mutableStateOf("starting")

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        window.addFlags(WindowManager.LayoutParams.FLAG_KEEP_SCREEN_ON)
        setContent {
            MaterialTheme {
                Text("sfmobile benchmark: $status", Modifier.fillMaxSize().padding(24.dp))
            }
        }
        if (savedInstanceState != null) return // a configuration change: the session is already running
        val files = getExternalFilesDir(null)
        if (files == null) {
            Log.e(TAG, "external storage is not available: no place for the result")
            finish()
            return
        }
        val resultsDir = File(files, "benchmarks")
        lifecycleScope.launch {
            status = withContext(Dispatchers.Default) { runSession(intent, resultsDir) }
            Log.i(TAG, status)
            finish()
        }
    }

    private fun runSession(
        intent: Intent,
        resultsDir: File,
    ): String {
        val args =
            try {
                parseArgs(intent)
            } catch (e: InputException) {
                val name = intent.getStringExtra(EXTRA_SESSION)?.takeIf { it.matches(SAFE_NAME) } ?: "invalid-${System.currentTimeMillis()}"
                resultsDir.mkdirs()
                File(resultsDir, "$name.error").writeText(e.message + "\n")
                return "bad extras: ${e.message}"
            }
        GenerationRepository.release() // the UI's model, if any: the session measures a cold load
        val session = BenchmarkSession(AndroidBenchmarkPlatform(applicationContext), BundleStore(this).catalog, resultsDir)
        val report =
            try {
                session.run(args)
            } catch (e: IOException) {
                return "could not write the result into $resultsDir: ${e.message}"
            }
        return "${report.status.wire}: ${File(resultsDir, report.sessionId + ".json")}" + (report.error?.let { " ($it)" } ?: "")
    }

    private fun parseArgs(intent: Intent): BenchmarkArgs =
        BenchmarkArgs.parse(
            bundle = intent.getStringExtra("bundle"),
            backend = intent.getStringExtra("backend"),
            runs = intent.intExtra("runs"),
            warmup = intent.intExtra("warmup"),
            steps = intent.intExtra("steps"),
            guidance = if (intent.hasExtra("guidance")) intent.getFloatExtra("guidance", Float.NaN) else null,
            prompt = intent.getStringExtra("prompt"),
            negativePrompt = intent.getStringExtra("negative_prompt"),
            seed = if (intent.hasExtra("seed")) intent.getLongExtra("seed", -1) else null,
            sessionId = intent.getStringExtra(EXTRA_SESSION),
            cooldownStatusBefore = intent.intExtra("cooldown_status_before"),
            cooldownStatusAfter = intent.intExtra("cooldown_status_after"),
            cooldownWaitedS = if (intent.hasExtra("cooldown_waited_s")) intent.getFloatExtra("cooldown_waited_s", Float.NaN) else null,
            tileDecoder = intent.getStringExtra("tile_decoder"),
        )

    private fun Intent.intExtra(name: String): Int? = if (hasExtra(name)) getIntExtra(name, Int.MIN_VALUE) else null

    private companion object {
        const val TAG = "sfmobile-bench"
        const val EXTRA_SESSION = "session_id"
        val SAFE_NAME = Regex("[A-Za-z0-9._-]{1,64}")
    }
}
