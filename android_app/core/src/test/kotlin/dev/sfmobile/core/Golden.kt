package dev.sfmobile.core

import com.google.gson.JsonObject
import com.google.gson.JsonParser
import java.io.File
import java.nio.ByteBuffer
import java.nio.ByteOrder

/** The committed golden files (tests/golden/, written by `sfmobile golden`); tests run from the repository root. */
object Golden {
    val dir: File = File(System.getProperty("sfmobile.golden") ?: "tests/golden")

    fun json(path: String): JsonObject = JsonParser.parseString(File(dir, path).readText()).asJsonObject

    fun floats(file: File): FloatArray {
        val buffer = ByteBuffer.wrap(file.readBytes()).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer()
        return FloatArray(buffer.remaining()).also { buffer.get(it) }
    }

    fun ints(file: File): IntArray {
        val buffer = ByteBuffer.wrap(file.readBytes()).order(ByteOrder.LITTLE_ENDIAN).asIntBuffer()
        return IntArray(buffer.remaining()).also { buffer.get(it) }
    }
}
