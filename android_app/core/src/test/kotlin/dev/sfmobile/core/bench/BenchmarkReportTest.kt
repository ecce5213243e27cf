package dev.sfmobile.core.bench

import com.google.gson.JsonParser
import dev.sfmobile.core.Timings
import dev.sfmobile.core.device.manifestText
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.io.TempDir
import java.io.File

/**
 * The JSON this code writes is compared with committed examples under
 * src/test/resources/bench/, which tests/test_android_benchmark_schema.py validates against
 * android_app/benchmark-result.schema.json: so what the phone writes follows the schema.
 */
class BenchmarkReportTest {
    @TempDir
    lateinit var tmp: File

    private val device = DeviceInfo("samsung", "SM-S911B", "SM8550", "15", 35, 7423.5, 3120.25)
    private val settings = BenchmarkSettings("a red fox in snow", "", 8, 7.3f, 0, 1, 2, 2)
    private val recipe = JsonParser.parseString("""{"format": "onnx", "precision": "fp16", "quantization": null}""").asJsonObject

    private fun run(total: Double) =
        RunRecord.of(
            Timings().apply {
                tokenizeMs = 0.4
                textEncoderMs = 12.5
                unetMs.addAll(List(8) { 71.25 })
                schedulerMs = 0.75
                decoderMs = 190.0
                totalMs = total
            },
            peakMemoryMb = 1480.5,
        )

    private fun okReport() =
        BenchmarkReport(
            sessionId = "20261201T031500Z-SM-S911B-ort-qnn",
            startedAt = "2026-12-01T04:15:00+01:00",
            appVersion = "0.1.0",
            status = BenchmarkStatus.OK,
            device = device,
            backend = BackendInfo("ort-qnn", "htp", "1.27.0"),
            bundle = BundleInfo("demo-qnn", recipe, "ab".repeat(32), 123456789),
            settings = settings,
            loadMs = 2150.0,
            thermal = Thermal(31.5, 34.0, 0, 1),
            cooldown = HostCooldown(thermalStatusBefore = 2, thermalStatusAfter = 0, waitedS = 95.5),
            runs = listOf(run(780.0), run(775.5)),
        )

    private fun failedReport() =
        BenchmarkReport(
            sessionId = "20261201T031500Z-SM-A546B-ort-cpu",
            startedAt = "2026-12-01T03:15:00Z",
            status = BenchmarkStatus.FAILED,
            error = "bundle 'sd15-fp32' needs about 5.35 GiB of memory (3.40 GiB on disk) but only 2.10 GiB is free",
            device = DeviceInfo("samsung", "SM-A546B", "s5e8835", "14", 34, 5612.0),
            backend = BackendInfo("ort-cpu", "xnnpack"),
            bundle = BundleInfo("sd15-fp32"),
            settings = settings.copy(guidance = 7.5f),
            thermal = Thermal(batteryCBefore = 29.0, thermalStatusBefore = 0),
            runs = listOf(),
        )

    private fun assertMatchesGolden(
        name: String,
        json: String,
    ) {
        val golden = RepoFiles.find("android_app/core/src/test/resources/bench").resolve(name)
        if (RepoFiles.updateGolden) golden.writeText(json)
        assertEquals(golden.readText(), json, "$name differs; SFCORE_UPDATE_GOLDEN=1 rewrites it")
    }

    @Test
    fun `an ok session is written as the committed example`() {
        assertMatchesGolden("benchmark-ok.json", okReport().toJson())
    }

    @Test
    fun `a refused bundle is written as a failed session with its error`() {
        assertMatchesGolden("benchmark-failed.json", failedReport().toJson())
    }

    @Test
    fun `writeTo puts the json at benchmarks slash session id and leaves nothing else`() {
        val dir = File(tmp, "files/benchmarks")
        val file = okReport().writeTo(dir)
        assertEquals(File(dir, "20261201T031500Z-SM-S911B-ort-qnn.json"), file)
        assertEquals(okReport().toJson(), file.readText())
        assertEquals(listOf(file.name), dir.list()!!.toList())
    }

    @Test
    fun `reports the schema would refuse cannot be built`() {
        assertThrows(IllegalArgumentException::class.java, { okReport().copy(error = "x") }, "ok with an error")
        assertThrows(IllegalArgumentException::class.java, { failedReport().copy(error = null) }, "failed without error")
        assertThrows(IllegalArgumentException::class.java, { okReport().copy(runs = listOf(run(1.0))) }, "ok missing runs")
        assertThrows(IllegalArgumentException::class.java, { okReport().copy(sessionId = "a b") }, "bad session id")
        assertThrows(IllegalArgumentException::class.java, { okReport().copy(loadMs = -1.0) }, "negative time")
        assertThrows(IllegalArgumentException::class.java, { settings.copy(cfgBatch = 3) }, "cfg batch 3")
    }

    @Test
    fun `bundle facts copy the manifest's recipe as is and hash the manifest`() {
        val dir = File(tmp, "demo").apply { mkdirs() }
        File(dir, "manifest.json").writeText(manifestText())
        val info = BundleInfo.read("demo", dir, 42)
        assertEquals(
            JsonParser.parseString(
                """{"format": "onnx", "precision": "fp32", "quantization": null, "calibration": null, "future_field": [1, 2]}""",
            ),
            info.recipe,
        )
        assertEquals(
            dev.sfmobile.core.Bundle
                .sha256Of(File(dir, "manifest.json")),
            info.manifestSha256,
        )
        val missing = BundleInfo.read("gone", File(tmp, "gone"), null)
        assertEquals(0, missing.recipe.size())
        assertNull(missing.manifestSha256)
    }
}
