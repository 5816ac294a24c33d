"""LightningModules and their DataModules: the cross-encoder teacher (teacher, teacher_data),
the k-order graph students (korder, korder_data) and the BERT2DNN student (bert2dnn,
bert2dnn_data; n-gram initialisation, training driver and scorer beside them)."""
