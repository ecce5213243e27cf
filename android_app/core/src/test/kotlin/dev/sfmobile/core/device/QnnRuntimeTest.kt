package dev.sfmobile.core.device

import dev.sfmobile.core.Bundle
import dev.sfmobile.core.BundleException
import dev.sfmobile.core.Golden
import dev.sfmobile.core.Manifest
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import java.io.File

class QnnRuntimeTest {
    /** The corpus's QNN bundle: compiled with QNN SDK v2.51.0.260929181845 (onnxruntime-qnn 2.7.0's). */
    private val corpus = Bundle.open(File(Golden.dir, "bundles/valid-qnn")).manifest

    private fun compiledWith(sdk: String): Manifest =
        Manifest.parse(manifestText("qnn").replace("\"qnn_sdk\": \"v2.51.0\"", "\"qnn_sdk\": \"$sdk\""), "test/manifest.json")

    @Test
    fun `contexts load on a runtime of the same major and minor, whatever the patch and build stamp`() {
        assertEquals("v2.51.0.260929181845", QnnRuntime.checkContexts(corpus, "2.51.0"))
        assertEquals("v2.51.0.260929181845", QnnRuntime.checkContexts(corpus, "2.51.40"))
        assertEquals("2.51.1", QnnRuntime.checkContexts(compiledWith("2.51.1"), "2.51.0"))
    }

    @Test
    fun `contexts from another QNN release are refused with a typed error naming both versions`() {
        for (runtime in listOf("2.50.0", "2.52.0", "3.51.0")) {
            val error = assertThrows(QnnSdkMismatchException::class.java) { QnnRuntime.checkContexts(corpus, runtime) }
            assertEquals("v2.51.0.260929181845", error.compiled)
            assertEquals(runtime, error.runtime)
            assertTrue(error.message!!.contains("compiled with QNN SDK v2.51.0.260929181845"), error.message)
            assertTrue(error.message!!.contains("this app's QNN runtime is $runtime"), error.message)
            assertTrue(error is BundleException, "a refused bundle, as every other refusal")
        }
        // The minor compared as a number: 2.5 is not 2.50.
        assertThrows(QnnSdkMismatchException::class.java) { QnnRuntime.checkContexts(compiledWith("v2.5.0"), "2.50.0") }
    }

    @Test
    fun `a qnn_sdk that is no version is refused, an onnx bundle is not a QNN bundle`() {
        val unknown = assertThrows(QnnSdkMismatchException::class.java) { QnnRuntime.checkContexts(compiledWith("unknown"), "2.51.0") }
        assertTrue(unknown.message!!.startsWith("qnn.qnn_sdk 'unknown' is not a QNN SDK version"), unknown.message)
        val onnx = assertThrows(BundleException::class.java) { QnnRuntime.checkContexts(manifest("onnx"), "2.51.0") }
        assertTrue(onnx.message!!.contains("no qnn section"), onnx.message)
    }

    @Test
    fun `major and minor are read from the forms QNN and Maven write`() {
        assertEquals(2 to 51, QnnRuntime.majorMinor("v2.51.0.260929181845"))
        assertEquals(2 to 51, QnnRuntime.majorMinor("2.51"))
        assertEquals(null, QnnRuntime.majorMinor("2"))
        assertEquals(null, QnnRuntime.majorMinor("2.51.0-rc1"))
    }
}
