package dev.sfmobile.core.device

import dev.sfmobile.core.BundleException
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test

class ModelFilesTest {
    @Test
    fun `cpu backends load each component's model file`() {
        val files = ModelFiles.resolve(manifest(), Backend.ORT_CPU)
        assertEquals(mapOf("text_encoder" to "text_encoder.onnx", "unet" to "unet.onnx", "decoder" to "decoder.onnx"), files)
        assertEquals("unet.tflite", ModelFiles.resolve(manifest("tflite"), Backend.LITERT_GPU)["unet"])
    }

    @Test
    fun `a backend of the other runtime is refused naming the ones that fit`() {
        val error = assertThrows(BundleException::class.java) { ModelFiles.resolve(manifest("onnx"), Backend.LITERT_NPU) }
        assertTrue(error.message!!.contains("is onnx but backend litert-npu runs tflite"), error.message)
        assertTrue(error.message!!.contains("ort-cpu, ort-nnapi, ort-qnn"), error.message)
    }

    @Test
    fun `a tensor that is neither float32 nor int32 is refused naming it`() {
        val error = assertThrows(BundleException::class.java) { ModelFiles.resolve(manifest(unetInputDtype = "uint8"), Backend.ORT_CPU) }
        assertTrue(error.message!!.contains("component 'unet' input 'sample' is uint8"), error.message)
    }

    @Test
    fun `ort-qnn prefers a precompiled context listed beside the model`() {
        val m = manifest(extraFiles = listOf("unet_ctx.onnx", "unet_QNN_123.bin"))
        val files = ModelFiles.resolve(m, Backend.ORT_QNN)
        assertEquals("unet_ctx.onnx", files["unet"])
        assertEquals("decoder.onnx", files["decoder"], "no context listed: the model, compiled at load")
        assertEquals("unet.onnx", ModelFiles.resolve(m, Backend.ORT_CPU)["unet"])
    }

    @Test
    fun `ort-qnn takes a context the component lists itself`() {
        val m = manifest(files = mapOf("unet" to listOf("unet.onnx", "unet_ctx.onnx", "unet_ctx_QNN_1.bin")))
        assertEquals("unet_ctx.onnx", ModelFiles.resolve(m, Backend.ORT_QNN)["unet"])
    }

    @Test
    fun `a component that is only a QNN context is refused by the other backends`() {
        val m = manifest(files = mapOf("unet" to listOf("unet_ctx.onnx", "unet_QNN_1.bin")))
        assertEquals("unet_ctx.onnx", ModelFiles.resolve(m, Backend.ORT_QNN)["unet"])
        val error = assertThrows(BundleException::class.java) { ModelFiles.resolve(m, Backend.ORT_NNAPI) }
        assertTrue(error.message!!.contains("QNN context (unet_ctx.onnx)"), error.message)
    }
}
