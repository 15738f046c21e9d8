"""Applications built on snncomp: complete tasks that train and deploy a network end to end.

An application may import every layer below it (the runtime, the targets, ``snncomp.train``); nothing
in the compiler imports an application. :mod:`snncomp.apps.yinyang` is the Yin-Yang classification task.
"""
