package dev.sfmobile.core.device

import com.google.gson.JsonParser
import dev.sfmobile.core.InputException
import dev.sfmobile.core.bench.RepoFiles
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test

class BackendTest {
    @Test
    fun `ids are exactly the backend names the benchmark schema allows`() {
        val schema = JsonParser.parseString(RepoFiles.find("android_app/benchmark-result.schema.json").readText()).asJsonObject
        val allowed =
            schema
                .getAsJsonObject("properties")
                .getAsJsonObject("backend")
                .getAsJsonObject("properties")
                .getAsJsonObject("name")
                .getAsJsonArray("enum")
                .map { it.asString }
        assertEquals(allowed, Backend.entries.map { it.id })
    }

    @Test
    fun `parse reads an id and refuses anything else listing the ids`() {
        assertEquals(Backend.ORT_QNN, Backend.parse("ort-qnn"))
        assertEquals(Backend.LITERT_GPU, Backend.parse(" litert-gpu "))
        val error = assertThrows(InputException::class.java) { Backend.parse("qnn") }
        assertTrue(error.message!!.contains("unknown backend 'qnn'"), error.message)
        assertTrue(error.message!!.contains("ort-cpu, ort-nnapi, ort-qnn, litert-cpu, litert-gpu, litert-npu"), error.message)
    }

    @Test
    fun `each bundle format gets its runtime's backends, the CPU one by default`() {
        assertEquals(listOf(Backend.ORT_CPU, Backend.ORT_NNAPI), Backend.forFormat("onnx"))
        assertEquals(listOf(Backend.ORT_QNN), Backend.forFormat("qnn"))
        assertEquals(Backend.ORT_QNN, Backend.defaultFor("qnn"))
        assertEquals(listOf(Backend.LITERT_CPU, Backend.LITERT_GPU, Backend.LITERT_NPU), Backend.forFormat("tflite"))
        assertEquals(Backend.ORT_CPU, Backend.defaultFor("onnx"))
        assertEquals(Backend.LITERT_CPU, Backend.defaultFor("tflite"))
        assertThrows(InputException::class.java) { Backend.defaultFor("coreml") }
    }

    @Test
    fun `NNAPI is deprecated from Android 15 on`() {
        assertFalse(Backend.ORT_NNAPI.isDeprecatedOn(34))
        assertTrue(Backend.ORT_NNAPI.isDeprecatedOn(35))
        assertFalse(Backend.ORT_QNN.isDeprecatedOn(36))
    }
}
